"""Multigrids: every cell of a grid between four corners, decoded at several pitches in chunks."""

import numpy as np
import pytest
import torch

from nsynth_core.models.ddsp import DDSPDecoder
from nsynth_core.explorer.decoding import decoding_for
from nsynth_core.explorer.interpolation import InterpolationError, grid_weights, mix
from nsynth_core.explorer.multigrid import ONS_PITCHES, MultigridError, decode_multigrid
from nsynth_core.models.wavenet import WaveNetAutoencoder
from tests.app_helpers import TINY_DDSP, TINY_WAVENET

LENGTH = 2048  # 4 Z frames
PITCHES = (24, 60, 84)


@pytest.fixture(scope="module")
def ddsp():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return decoding_for(DDSPDecoder(TINY_DDSP))


@pytest.fixture(scope="module")
def corner_z():
    return np.random.default_rng(0).normal(size=(4, LENGTH // 512, 16)).astype(np.float32)


def test_open_nsynth_supers_pitches():
    assert ONS_PITCHES == tuple(range(24, 85, 4)) and len(ONS_PITCHES) == 16


def test_every_cell_is_decoded_at_every_pitch_from_its_mixed_z(ddsp, corner_z, monkeypatch):
    calls = []
    real_decode = ddsp.decode
    monkeypatch.setattr(ddsp, "decode",
                        lambda z, pitch, *args: calls.append((z, pitch)) or real_decode(z, pitch, *args))
    reported = []
    grid = decode_multigrid(ddsp, corner_z, size=3, pitches=PITCHES, length=LENGTH, chunk=5,
                            progress=lambda done, total: reported.append((done, total)))
    assert grid.audio.shape == (9, 3, LENGTH) and grid.labels[:2] == ["r1c1", "r1c2"] and grid.pitches == PITCHES
    assert [len(pitch) for _, pitch in calls] == [5, 5, 5, 5, 5, 2]  # 27 notes in chunks of at most 5
    assert reported[-1] == (27, 27) and len(reported) == 6
    # Note n is cell n // 3 at pitch n % 3, with that cell's Open NSynth Super mixture of the corners.
    cell_z = mix(corner_z, grid_weights(3, "distance").reshape(9, 4))
    given_z = torch.cat([z for z, _ in calls]).numpy()
    np.testing.assert_allclose(given_z, np.repeat(cell_z, 3, axis=0), rtol=1e-6)
    assert torch.cat([pitch for _, pitch in calls]).tolist() == list(PITCHES) * 9
    np.testing.assert_allclose(grid.weights, grid_weights(3, "distance").reshape(9, 4))


def test_chunking_changes_nothing_in_the_sound(ddsp, corner_z):
    chunked = decode_multigrid(ddsp, corner_z, size=2, pitches=PITCHES, length=LENGTH, chunk=4)
    whole = decode_multigrid(ddsp, corner_z, size=2, pitches=PITCHES, length=LENGTH, chunk=1000)
    np.testing.assert_allclose(chunked.audio, whole.audio, atol=1e-5)
    assert np.abs(whole.audio).max() > 0


def test_pitches_are_sorted_once_each_and_sizes_reach_nine(ddsp, corner_z):
    grid = decode_multigrid(ddsp, corner_z, size=9, pitches=[60, 48, 60], length=512)
    assert grid.pitches == (48, 60) and grid.audio.shape == (81, 2, 512)
    with pytest.raises(InterpolationError):
        decode_multigrid(ddsp, corner_z, size=10, length=512)


def test_a_decoder_without_pitch_conditioning_is_refused(corner_z):
    with pytest.raises(MultigridError, match="pitch"):
        decode_multigrid(decoding_for(WaveNetAutoencoder(TINY_WAVENET)), corner_z, size=2, length=512)


def test_the_explorer_decodes_four_corner_notes(tmp_path):
    from nsynth_core.explorer.explorer import Explorer
    from nsynth_core.explorer.loaded_models import load_model
    from nsynth_core.explorer.notes import ExplorerError
    from tests.app_helpers import write_tiny_checkpoints

    wavenet_path, _, ddsp_path = write_tiny_checkpoints(tmp_path)
    app = Explorer(tmp_path)
    corners = list(app.bundled.values())[:4]
    grid = app.multigrid(load_model(ddsp_path), load_model(wavenet_path), corners, 2, PITCHES, 1024)
    assert grid.audio.shape == (4, 3, 1024)
    with pytest.raises(ExplorerError, match="four"):
        app.multigrid(load_model(ddsp_path), load_model(wavenet_path), corners[:2], 2, PITCHES, 1024)
