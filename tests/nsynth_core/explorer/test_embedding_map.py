import numpy as np
import pytest

from nsynth_core.explorer.embedding_map import (
    MAP_FILE, REDUCER_FILE, EmbeddingMapError, build_map, ensure_reducer, load_map, note_features, save_map,
)

CLUSTERS, PER_CLUSTER, FRAMES, CHANNELS = 4, 6, 5, 16


def clustered_z(seed=0):
    """Notes whose Z frames scatter around one of four well separated centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=10.0, size=(CLUSTERS, CHANNELS))
    labels = np.repeat(np.arange(CLUSTERS), PER_CLUSTER)
    z = centres[labels][:, None, :] + rng.normal(scale=0.5, size=(len(labels), FRAMES, CHANNELS))
    return z.astype(np.float32), labels, centres


@pytest.fixture(scope="module")
def fitted():
    z, labels, centres = clustered_z()
    embedding_map = build_map(
        z, checkpoint="abc123", names=[f"note{i}" for i in range(len(z))], families=[f"family{c}" for c in labels],
        pitches=np.full(len(z), 60), sources=["test"] * len(z))
    return embedding_map, labels, centres


def test_note_features_average_frames():
    z = np.arange(12, dtype=np.float32).reshape(2, 3, 2)
    np.testing.assert_allclose(note_features(z), [[2, 3], [8, 9]])


def test_new_notes_land_beside_their_cluster(fitted):
    embedding_map, labels, centres = fitted
    rng = np.random.default_rng(1)
    new_features = centres + rng.normal(scale=0.3, size=centres.shape)
    placed = embedding_map.place(new_features)
    cluster_centres = np.stack([embedding_map.positions[labels == c].mean(0) for c in range(CLUSTERS)])
    nearest = np.linalg.norm(placed[:, None] - cluster_centres[None], axis=-1).argmin(1)
    np.testing.assert_array_equal(nearest, np.arange(CLUSTERS))


def test_trajectory_places_every_frame(fitted):
    embedding_map, labels, _ = fitted
    z, _, _ = clustered_z()
    path = embedding_map.trajectory(z[0])
    assert path.shape == (FRAMES, 2) and np.isfinite(path).all()


def test_round_trip_keeps_labels_positions_and_placement(fitted, tmp_path):
    embedding_map, _, centres = fitted
    save_map(embedding_map, tmp_path)
    loaded = load_map(tmp_path)
    assert loaded.reducer is None and loaded.checkpoint == "abc123"
    np.testing.assert_array_equal(loaded.names, embedding_map.names)
    np.testing.assert_array_equal(loaded.positions, embedding_map.positions)
    with pytest.raises(EmbeddingMapError, match="no reducer"):
        loaded.place(centres)
    ready = ensure_reducer(loaded, tmp_path)
    np.testing.assert_allclose(ready.place(centres), embedding_map.place(centres), atol=1e-5)


def test_unreadable_reducer_is_refitted_from_the_stored_features(fitted, tmp_path):
    embedding_map, labels, centres = fitted
    save_map(embedding_map, tmp_path)
    (tmp_path / REDUCER_FILE).write_bytes(b"not a reducer")
    ready = ensure_reducer(load_map(tmp_path), tmp_path)
    assert ready.place(centres).shape == (CLUSTERS, 2)
    # A seeded fit of the same features reproduces the same map.
    np.testing.assert_allclose(ready.positions, embedding_map.positions, atol=1e-4)


def test_clear_errors(fitted, tmp_path):
    embedding_map, _, _ = fitted
    with pytest.raises(EmbeddingMapError, match="channels"):
        embedding_map.place(np.zeros((1, 3)))
    with pytest.raises(EmbeddingMapError, match="build_assets"):
        load_map(tmp_path)
    (tmp_path / MAP_FILE).write_bytes(b"garbage")
    with pytest.raises(EmbeddingMapError, match="cannot be read"):
        load_map(tmp_path)
    with pytest.raises(EmbeddingMapError, match="at least 4"):
        build_map(np.zeros((3, 2, 16)), "x", names=["a"] * 3, families=["f"] * 3, pitches=[1] * 3, sources=["s"] * 3)
