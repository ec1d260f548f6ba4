import numpy as np
import pytest
from hypothesis import given, strategies as st

from nsynth_core.explorer.interpolation import (
    GRID_SIZES, InterpolationError, bilinear_weights, distance_weights, grid_weights, line_weights, mix,
)


@pytest.mark.parametrize("rule", ["bilinear", "distance"])
@pytest.mark.parametrize("size", GRID_SIZES)
def test_grid_weights_are_convex_and_exact_at_corners(rule, size):
    weights = grid_weights(size, rule)
    assert weights.shape == (size, size, 4)
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-12)
    corner_cells = [weights[0, 0], weights[0, -1], weights[-1, 0], weights[-1, -1]]
    np.testing.assert_allclose(np.stack(corner_cells), np.eye(4), atol=1e-12)


def test_distance_weights_follow_open_nsynth_super():
    # 3x3: the top-middle cell (x=0.5, y=0) is 0.5 from the two top corners and ~1.118 from the bottom ones.
    weights = distance_weights(3)
    np.testing.assert_allclose(weights[0, 1], [0.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(weights[1, 1], [0.25] * 4)
    # 5x5, cell (x=0.25, y=0.25): distances 0.354, 0.791, 0.791, 1.061 -> raw 0.646, 0.209, 0.209, 0.
    raw = np.maximum(1 - np.array([np.hypot(0.25, 0.25), np.hypot(0.75, 0.25), np.hypot(0.25, 0.75), 1.0607]), 0)
    np.testing.assert_allclose(distance_weights(5)[1, 1], raw / raw.sum(), atol=1e-4)


def test_bilinear_and_distance_rules_differ_off_the_edges():
    bilinear = bilinear_weights(5)[1, 1]
    np.testing.assert_allclose(bilinear, [0.5625, 0.1875, 0.1875, 0.0625])
    assert distance_weights(5)[1, 1][3] == 0.0  # far corner ignored by the distance rule


def test_line_weights_go_from_first_to_second():
    weights = line_weights(5)
    np.testing.assert_allclose(weights[:, 1], [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(weights.sum(-1), 1.0)


@pytest.mark.parametrize("bad", [lambda: grid_weights(10), lambda: grid_weights(1), lambda: line_weights(1),
                                 lambda: grid_weights(3, "cubic"), lambda: mix(np.zeros((4, 2, 3)), np.ones(3))])
def test_bad_requests_raise_a_clear_error(bad):
    with pytest.raises(InterpolationError):
        bad()


@given(st.sampled_from(GRID_SIZES), st.sampled_from(["bilinear", "distance"]), st.integers(0, 2**31 - 1))
def test_mix_stays_inside_the_corners_range(size, rule, seed):
    corners = np.random.default_rng(seed).normal(size=(4, 7, 16)).astype(np.float32)
    cells = mix(corners, grid_weights(size, rule))
    assert cells.shape == (size, size, 7, 16)
    assert np.all(cells <= corners.max(0) + 1e-5) and np.all(cells >= corners.min(0) - 1e-5)
    np.testing.assert_allclose(cells[0, -1], corners[1], atol=1e-6)


def test_mix_of_a_line_is_linear():
    a, b = np.zeros((3, 16)), np.ones((3, 16))
    cells = mix(np.stack([a, b]), line_weights(3))
    np.testing.assert_allclose(cells[1], 0.5)
