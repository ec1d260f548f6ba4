"""The timbre explorer's shared state, free of any web page: the bundled notes, the checkpoints, and one map per
WaveNet encoder, with what a visitor does over them: notes placed on the map, grids and reconstructions decoded,
any point of the map played as a blend of its nearest notes.

The rest of the package holds the parts: notes and their Z (`notes`), loaded models, encoding and decoding
(`loaded_models`), grids (`grids`). An `Explorer` takes notes and encodes each once per encoder (an EncodedNote
keeps its Z), so moving between notes, grids and reconstructions only computes what is new.
"""

import threading
from pathlib import Path

import numpy as np

from nsynth_core.audio.core import NOTE_LENGTH
from nsynth_core.explorer.embedding_map import (EmbeddingMap, EmbeddingMapError, build_map, ensure_reducer,
                                                load_map, note_features)
from nsynth_core.explorer.grids import Grid, grid_pitches, grid_size, grid_z, played_pitches
from nsynth_core.explorer.interpolation import mix
from nsynth_core.explorer.loaded_models import (LoadedModel, Progress, check_pitches, checkpoint_problem,
                                                checkpoints_dir, decode_z, encode_notes, encoder_for,
                                                list_checkpoints, stacked_z)
from nsynth_core.explorer.lru_cache import LRUCache
from nsynth_core.explorer.map_points import MapBlend, map_point, neighbour_weights
from nsynth_core.explorer.multigrid import ONS_PITCHES, Multigrid, decode_multigrid
from nsynth_core.explorer.notes import ASSETS_DIR, ExplorerError, Note, audio_digest, bundled_notes

MAPS_KEPT = 4  # like the loaded models: one map per recently used WaveNet encoder
PLACES_KEPT = 1024  # notes whose place on a map is remembered (two numbers each)


def compute_map(wavenet: LoadedModel, notes: list[Note], progress: Progress | None = None) -> EmbeddingMap:
    """A fresh map of `notes` in the space of this WaveNet's encoder (slow: encodes every note, fits UMAP)."""
    if wavenet.kind != "wavenet":
        raise ExplorerError("The map is drawn in the WaveNet's embedding space; choose a WaveNet checkpoint.")
    return build_map(stacked_z(encode_notes(wavenet, notes, progress)), checkpoint=wavenet.fingerprint,
                     names=[note.id for note in notes], families=[note.family for note in notes],
                     pitches=[note.pitch if note.pitch is not None else -1 for note in notes],
                     sources=[note.source for note in notes])


class Explorer:
    """What all visitors share: the bundled notes, the checkpoints, and one map per WaveNet encoder."""

    def __init__(self, checkpoints=None, assets_dir=ASSETS_DIR):
        self.checkpoints_dir = Path(checkpoints) if checkpoints is not None else checkpoints_dir()
        self.assets_dir = Path(assets_dir)
        self.bundled = {note.id: note for note in bundled_notes(self.assets_dir)}
        try:
            self.stored_map = load_map(self.assets_dir)
        except EmbeddingMapError:
            self.stored_map = None
        self._maps = LRUCache(MAPS_KEPT)
        self._map_lock = threading.Lock()
        # Where a note lies in a map, by (WaveNet, audio): a visitor's earlier notes are not placed again at each
        # redraw, and stay where they were first drawn.
        self._positions = LRUCache(PLACES_KEPT)

    def checkpoints(self) -> dict[str, list[tuple[str, str]]]:
        """{kind: [(name, path)]} of the checkpoints that load; broken ones are left out (broken_checkpoints
        says why)."""
        return {kind: [(name, path) for name, path in found if not checkpoint_problem(path)]
                for kind, found in list_checkpoints(self.checkpoints_dir).items()}

    def notes(self, session: dict[str, Note]) -> dict[str, Note]:
        return {**self.bundled, **session}

    def note(self, session: dict[str, Note], note_id: str) -> Note:
        notes = self.notes(session)
        if note_id not in notes:
            raise ExplorerError("That note is no longer available; choose another one.")
        return notes[note_id]

    def map_for(self, wavenet: LoadedModel | None, progress: Progress | None = None,
                placing: bool = True) -> EmbeddingMap | None:
        """The bundled notes' map in this WaveNet's space: the precomputed one when it was made with the same
        weights, else computed here once (progress reports the examples encoded). Without a WaveNet, the
        precomputed positions alone. `placing=False` is for drawing the examples only: it never waits for
        the reducer to load and warm up."""
        if wavenet is None:
            return self.stored_map
        stored_matches = self.precomputed_map(wavenet) is not None
        if not placing and stored_matches:
            computed = self._maps.get(wavenet.fingerprint)
            return computed if computed is not None else self.stored_map
        with self._map_lock:
            embedding_map = self._maps.get(wavenet.fingerprint)
            if embedding_map is None:
                if stored_matches:
                    embedding_map = ensure_reducer(self.stored_map, self.assets_dir)
                else:
                    embedding_map = compute_map(wavenet, list(self.bundled.values()), progress)
                self._maps.put(wavenet.fingerprint, embedding_map)
            return embedding_map

    def precomputed_map(self, wavenet: LoadedModel) -> EmbeddingMap | None:
        """The shipped map when it was made with this WaveNet's weights: drawn without encoding anything."""
        if self.stored_map is not None and self.stored_map.checkpoint == wavenet.fingerprint:
            return self.stored_map
        return None

    def has_map(self, wavenet: LoadedModel) -> bool:
        """Whether this WaveNet's map is ready to place notes without loading or computing anything."""
        return self._maps.get(wavenet.fingerprint) is not None

    def place_notes(self, wavenet: LoadedModel, notes: list[Note]) -> np.ndarray:
        """[N, 2]: where each note lies on this WaveNet's map, from the Z it carries (else encoded now); a note
        placed before keeps its place."""
        if not notes:
            return np.zeros((0, 2), np.float32)
        keys = [(wavenet.fingerprint, audio_digest(note.audio)) for note in notes]
        missing = [i for i, key in enumerate(keys) if self._positions.get(key) is None]
        if missing:
            encoded = encode_notes(wavenet, [notes[i] for i in missing])
            placed = self.map_for(wavenet).place(note_features(stacked_z(encoded)))
            for i, position in zip(missing, placed):
                self._positions.put(keys[i], position)
        return np.stack([self._positions.get(key) for key in keys])

    def place_grid(self, wavenet: LoadedModel, grid: Grid) -> np.ndarray:
        """Where each cell's mixture lies: the time average is linear, so mixing features mixes Z."""
        features = note_features(stacked_z(encode_notes(wavenet, grid.corners)))
        return self.map_for(wavenet).place(grid.weights.astype(np.float32) @ features)

    def trajectory(self, wavenet: LoadedModel, note: Note) -> np.ndarray:
        return self.map_for(wavenet).trajectory(encode_notes(wavenet, [note])[0].z)

    def decode_grid(self, loaded: LoadedModel, encoder: LoadedModel, grid: Grid, temperature: float, length: int,
                    progress: Progress | None = None, pitch: int | None = None,
                    octaves: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(audio [cells, length], Z [cells, ...]) of every cell, decoded in one batch; `encoder` is the model
        whose Z the decoder reads (see encoder_for); pitch / octaves: see played_pitches."""
        if pitch is None:  # cells take their corners' pitches: a missing one is named by its note
            check_pitches(loaded, [note.pitch for note in grid.corners], [note.name for note in grid.corners])
        z = grid_z(encoder, grid)
        pitches = played_pitches(grid_pitches(grid), pitch, octaves)
        audio = decode_z(loaded, z, pitches, grid.labels, temperature, length, progress=progress)
        return audio, z

    def reconstruct(self, loaded: LoadedModel, encoder: LoadedModel, note: Note, temperature: float, length: int,
                    progress: Progress | None = None, pitch: int | None = None, octaves: int = 0) -> np.ndarray:
        z = stacked_z(encode_notes(encoder, [note]))
        pitches = played_pitches([note.pitch], pitch, octaves)
        return decode_z(loaded, z, pitches, [note.name], temperature, length, progress=progress)[0]

    def multigrid(self, loaded: LoadedModel, encoder: LoadedModel, corners: list[Note], size: int,
                  pitches=ONS_PITCHES, length: int = NOTE_LENGTH, rule: str = "distance", temperature: float = 1.0,
                  progress: Progress | None = None) -> Multigrid:
        """Every cell of a size x size grid between four corner notes at every pitch (multigrid.py); not cached:
        1 296 notes would flush the decode cache."""
        if len(corners) != 4:
            raise ExplorerError(f"A multigrid needs four corner notes, not {len(corners)}.")
        return decode_multigrid(loaded.decoding, stacked_z(encode_notes(encoder, corners)), grid_size(size), pitches,
                                length, rule, temperature, progress=progress)

    def map_blend(self, wavenet: LoadedModel, point) -> tuple[MapBlend, list[Note]]:
        """The blend of the bundled notes nearest to `point` (x, y) of this WaveNet's map (map_points' rule),
        and those notes, nearest first. Only the neighbours are encoded; a point off any map is refused."""
        point = map_point(*point)
        embedding_map = self.map_for(wavenet, placing=False)
        nearest, weights = neighbour_weights(embedding_map.positions, point)
        notes = [self.bundled[str(embedding_map.names[i])] for i in nearest]
        blend = mix(stacked_z(encode_notes(wavenet, notes)), weights)
        return MapBlend(z=blend, neighbours=nearest, weights=weights), notes

    def play_point(self, loaded: LoadedModel, wavenet: LoadedModel, point, temperature: float, length: int,
                   pitch: int | None = None, progress: Progress | None = None,
                   octaves: int = 0) -> tuple[np.ndarray, MapBlend, list]:
        """(audio [length], the blend, its notes) of a point of the map, decoded by `loaded` (a decoder that reads
        the WaveNet's Z) at `pitch`, by default the nearest note's shifted by `octaves`."""
        blend, notes = self.map_blend(wavenet, point)
        if encoder_for(loaded, wavenet).fingerprint != wavenet.fingerprint:
            raise ExplorerError(f"The map's blends are Z of {wavenet.name}'s encoder, which {loaded.name} does not "
                                "read: choose the DDSP decoder, or that WaveNet.")
        pitches = played_pitches([notes[0].pitch], pitch, octaves)
        audio = decode_z(loaded, blend.z[None], pitches, ["map point"], temperature, length, progress=progress)[0]
        return audio, blend, notes


