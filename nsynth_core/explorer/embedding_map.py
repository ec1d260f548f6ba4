"""A 2-D map of the embedding space: UMAP fitted once on a set of notes, then used to place new ones.

A note's feature is its Z averaged over time (16 numbers). Averaging keeps the feature in the same space as a
single Z frame, so the very same reducer also places each frame of a note, drawing the note's trajectory
through the map; it is linear, so the feature of a mixture of notes is the mixture of their features.

On disk (a folder, normally assets/): `map.npz` holds the notes' labels, features and 2-D positions, and
`map_reducer.joblib` the fitted reducer. The reducer is a pickle, so it is read only from this project's own
asset folder, never from anything a user supplies. When it cannot be read (a different umap-learn version, say)
the reducer is fitted again from the stored features and the positions follow that new fit.
"""

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import joblib
import numpy as np

MAP_FILE = "map.npz"
REDUCER_FILE = "map_reducer.joblib"
RANDOM_STATE = 0
MIN_DISTANCE = 0.3
LABELS = ("names", "families", "pitches", "sources")


class EmbeddingMapError(ValueError):
    pass


def note_features(z: np.ndarray) -> np.ndarray:
    """Z [..., frames, channels] -> the mean frame [..., channels]."""
    return np.asarray(z, dtype=np.float32).mean(axis=-2)


def fit_reducer(features: np.ndarray):
    """UMAP to 2-D, seeded so the same features give the same map."""
    import umap  # importing umap takes seconds (numba); only code that fits or places notes pays for it

    if len(features) < 4:
        raise EmbeddingMapError(f"A map needs at least 4 notes, got {len(features)}.")
    reducer = umap.UMAP(n_neighbors=min(15, len(features) - 1), min_dist=MIN_DISTANCE,
                        random_state=RANDOM_STATE, n_jobs=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="n_jobs value 1 overridden")  # seeding forces one thread anyway
        reducer.fit(features)
    return reducer


@dataclass
class EmbeddingMap:
    names: np.ndarray  # [N] str
    families: np.ndarray  # [N] str
    pitches: np.ndarray  # [N] int, MIDI
    sources: np.ndarray  # [N] str: where each note came from (e.g. the SoundFont)
    features: np.ndarray  # [N, channels] float32
    positions: np.ndarray  # [N, 2] float32
    checkpoint: str  # fingerprint of the checkpoint whose encoder made the features
    reducer: object = field(default=None, repr=False)

    def place(self, features: np.ndarray) -> np.ndarray:
        """New features [M, channels] -> positions [M, 2] in this map (the reducer is never refitted here)."""
        features = np.atleast_2d(np.asarray(features, dtype=np.float32))
        if features.shape[-1] != self.features.shape[-1]:
            raise EmbeddingMapError(f"This map places {self.features.shape[-1]}-channel features, "
                                    f"got {features.shape[-1]} channels.")
        if self.reducer is None:
            raise EmbeddingMapError("This map has no reducer yet; call ensure_reducer first.")
        return self.reducer.transform(features).astype(np.float32)

    def trajectory(self, z: np.ndarray) -> np.ndarray:
        """Z of one note [frames, channels] -> where each frame lies in the map [frames, 2]."""
        return self.place(z)


def build_map(z: np.ndarray, checkpoint: str, **labels) -> EmbeddingMap:
    """Fits a map to the notes' Z [N, frames, channels]; labels: names, families, pitches, sources (each [N])."""
    features = note_features(z)
    reducer = fit_reducer(features)
    return EmbeddingMap(**{name: np.asarray(labels[name]) for name in LABELS}, features=features,
                        positions=reducer.embedding_.astype(np.float32), checkpoint=checkpoint, reducer=reducer)


def save_map(embedding_map: EmbeddingMap, directory) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.asarray(getattr(embedding_map, name)) for name in LABELS}
    np.savez_compressed(directory / MAP_FILE, **arrays, features=embedding_map.features,
                        positions=embedding_map.positions, checkpoint=np.asarray(embedding_map.checkpoint))
    joblib.dump(embedding_map.reducer, directory / REDUCER_FILE)


def load_map(directory) -> EmbeddingMap:
    """The map without its reducer (fast, no pickle): enough to draw the bundled notes."""
    path = Path(directory) / MAP_FILE
    try:
        with np.load(path, allow_pickle=False) as stored:
            return EmbeddingMap(**{name: stored[name] for name in LABELS}, features=stored["features"],
                                positions=stored["positions"], checkpoint=str(stored["checkpoint"]))
    except FileNotFoundError:
        raise EmbeddingMapError(f"No precomputed map at {path}; build one with scripts/build_assets.py.") from None
    except (ValueError, KeyError, OSError) as error:
        raise EmbeddingMapError(f"The map file {path} cannot be read ({error}).") from None


def ensure_reducer(embedding_map: EmbeddingMap, directory) -> EmbeddingMap:
    """The map with a working reducer, warmed up so the first placement a user asks for is fast.

    Reads the stored reducer (our own asset) or, failing that, fits a new one on the stored features; the
    positions then come from that fit. Slow (seconds): run it in the background at start-up.
    """
    try:
        reducer = joblib.load(Path(directory) / REDUCER_FILE)
        embedding_map = replace(embedding_map, reducer=reducer)
        embedding_map.place(embedding_map.features[:1])
    except Exception:  # missing, or written by another umap-learn/numba version: the features are enough
        reducer = fit_reducer(embedding_map.features)
        embedding_map = replace(embedding_map, reducer=reducer, positions=reducer.embedding_.astype(np.float32))
        embedding_map.place(embedding_map.features[:1])
    return embedding_map
