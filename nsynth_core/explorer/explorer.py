"""The timbre explorer's logic, free of any web page: notes, models, the map and grids (decoding: decoding.py,
figures: figures.py, files for visitors: exports.py).

Notes are kept as `Note`s keyed by id: the bundled examples (assets/) are shared by everyone, a visitor's own
uploads live in their session. Encodings and decodings are cached by input, so moving between notes, grids and
reconstructions only computes what is new. A `Explorer` holds what is shared and costly: loaded models, the map,
the caches.
"""

import hashlib
import json
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Callable

import librosa
import numpy as np
import torch

from nsynth_core.audio.core import NOTE_LENGTH, SAMPLE_RATE, SILENCE_PEAK, load_audio
from nsynth_core.models.checkpoint import (MODEL_KINDS, CheckpointError, checkpoint_paths, load_checkpoint, read_description,
                         weights_fingerprint)
from nsynth_core.explorer.decoding import Decoding, decoding_for, describe_duration
from nsynth_core.exports.files import outputs_dir
from nsynth_core.explorer.embedding_map import EmbeddingMap, EmbeddingMapError, build_map, ensure_reducer, load_map, note_features
from nsynth_core.explorer.interpolation import GRID_SIZES, cell_labels, grid_weights, line_weights, mix
from nsynth_core.explorer.map_points import MapBlend, map_point, neighbour_weights
from nsynth_core.audio.metrics import quick_median_f0
from nsynth_core.explorer.multigrid import ONS_PITCHES, Multigrid, decode_multigrid
from nsynth_core.engine.precision import decoder_dtype

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
CHECKPOINTS_ENV = "NSYNTH_CHECKPOINTS"
DEFAULT_CHECKPOINTS_DIR = Path("checkpoints")
NOTES_INDEX = "notes.json"
ENCODE_BATCH = 8  # notes per encoder pass: bounds memory of the paper encoder's activations
DECODE_CACHE_SIZE = 256  # decoded notes (4 s each, 256 kB): about 64 MB at most
ENCODE_CACHE_SIZE = 1024  # Z of a note: 8 kB, so about 8 MB at most
MAPS_KEPT = 4  # like the loaded models: one map per recently used WaveNet encoder
CHECKS_KEPT = 64  # checkpoint file versions whose loadability is remembered
MAX_SESSION_NOTES = 48  # a visitor's own notes live in server memory (256 kB each)
# Each file of an upload is decoded and pitch-tracked (about a second each here) while a worker waits: one request
# must not hold it for minutes, so its files are counted and weighed before any is read.
MAX_UPLOAD_FILES = 16
MAX_UPLOAD_MB = 60
# Gradio keeps every uploaded file for an hour: a visitor's uploads together are bounded too.
MAX_SESSION_UPLOAD_MB = 150
SESSION_UPLOAD_ENV = "NSYNTH_SESSION_UPLOAD_MB"

Progress = Callable[[int, int], None]


class ExplorerError(ValueError):
    pass


@dataclass(frozen=True, eq=False)
class Note:
    id: str
    name: str
    audio: np.ndarray  # float32 [NOTE_LENGTH]
    family: str = "unknown"
    pitch: int | None = None  # MIDI
    source: str = "upload"

    @property
    def label(self) -> str:
        """Name, family and pitch; a name that begins with its family (as NSynth's do) says the family once."""
        said = [] if self.name.startswith(self.family) else [self.family]
        if self.pitch is not None:
            said.append(librosa.midi_to_note(self.pitch, unicode=False))
        return f"{self.name} ({', '.join(said)})" if said else self.name


@dataclass(frozen=True, eq=False)
class LoadedModel:
    model: torch.nn.Module
    kind: str  # "wavenet" | "spectral" | "ddsp"
    name: str
    fingerprint: str  # digest of the weights: the same weights under any name share caches and maps
    metadata: dict
    decoding: Decoding  # how it decodes Z + pitch to audio, and at what cost here

    @property
    def needs_pitch(self) -> bool:
        return self.decoding.needs_pitch


def audio_digest(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


class LRUCache:
    """A bounded, thread-safe map that forgets the least recently used entry first."""

    def __init__(self, size: int):
        self.size = size
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


# --- notes -------------------------------------------------------------------------------------------------------

def estimate_pitch(audio: np.ndarray) -> int | None:
    f0 = quick_median_f0(audio)
    return None if np.isnan(f0) else int(round(librosa.hz_to_midi(f0)))


def refuse_silence(audio: np.ndarray, what: str) -> None:
    """Refuses a note none of whose samples reaches SILENCE_PEAK: there is nothing in it to encode. `what` names
    the note in the message."""
    if np.abs(audio).max() < SILENCE_PEAK:
        raise ExplorerError(f"{what} is silent (no sample reaches {SILENCE_PEAK:g}, "
                            f"{20 * math.log10(SILENCE_PEAK):.0f} dBFS): there is nothing to encode.")


def read_note(path, name: str | None = None, source: str = "upload") -> Note:
    """A user's file as a 4 s note, its pitch not yet looked for (with_pitches); AudioError/ExplorerError (both
    ValueError) say what is wrong with it."""
    name = name or Path(path).stem
    audio = load_audio(path)
    refuse_silence(audio, f"'{name}'")
    return Note(id=f"{source}-{audio_digest(audio)}", name=name, audio=audio, source=source)


def with_pitches(notes: list[Note]) -> list[Note]:
    return [replace(note, pitch=estimate_pitch(note.audio)) for note in notes]


def note_from_file(path, name: str | None = None, source: str = "upload") -> Note:
    """read_note with its pitch found."""
    return with_pitches([read_note(path, name, source)])[0]


def upload_bytes(paths: list) -> int:
    return sum(os.path.getsize(path) for path in paths if os.path.isfile(path))


def session_upload_mb() -> float:
    return float(os.environ.get(SESSION_UPLOAD_ENV, MAX_SESSION_UPLOAD_MB))


def check_upload(paths: list, session: dict[str, Note], uploaded: int = 0) -> None:
    """Refuses an upload of too many files or bytes for one request, more files than the visitor's notes have
    room for, or more bytes than are left of the visitor's budget (`uploaded`: bytes of their earlier uploads),
    before any file is read."""
    room = MAX_SESSION_NOTES - len(session)
    if len(paths) > MAX_UPLOAD_FILES:
        raise ExplorerError(f"Upload at most {MAX_UPLOAD_FILES} files at a time; this upload has {len(paths)}.")
    if len(paths) > room:
        raise ExplorerError(f"Up to {MAX_SESSION_NOTES} notes of your own can be kept and you have {len(session)}, "
                            f"so {room} more can be added, not {len(paths)}. Reload the page to start afresh.")
    megabytes = upload_bytes(paths) / 2 ** 20
    if megabytes > MAX_UPLOAD_MB:
        raise ExplorerError(f"Upload at most {MAX_UPLOAD_MB} MB at a time; these files hold {megabytes:.0f} MB.")
    budget, used = session_upload_mb(), uploaded / 2 ** 20
    if used + megabytes > budget:
        raise ExplorerError(f"Each visitor can upload {budget:g} MB in all; you have uploaded {used:.1f} MB, so "
                            f"{max(budget - used, 0):.1f} MB more can be added, not {megabytes:.1f} MB. Reload "
                            "the page to start afresh.")


def pitch_warning(note: Note) -> str | None:
    """What to tell the visitor about a note whose pitch was not found: decoders that need one will refuse it."""
    if note.pitch is not None:
        return None
    return (f"No pitch was found in '{note.name}' (too short, too noisy or unpitched): it can be mapped and used "
            "with the WaveNet, but decoders that need a pitch (DDSP) will refuse it.")


def read_uploads(paths: list, session: dict[str, Note], uploaded: int = 0,
                 prepare: Callable[[list[Note]], list[Note]] = with_pitches) -> tuple[list[Note], list[str]]:
    """(the usable notes, warnings: why a file was skipped, which note has no pitch) of an upload that
    check_upload lets through; when no file is usable the reasons are raised, so the request fails with them.
    `prepare` finds the read notes' pitches (and may encode them: encoding_queue.py)."""
    paths = list(paths or [])
    check_upload(paths, session, uploaded)
    notes, problems = [], []
    for path in paths:
        try:
            notes.append(read_note(path))
        except ValueError as error:
            problems.append(str(error))
    if problems and not notes:
        raise ExplorerError(" ".join(problems))
    notes = prepare(notes)
    return notes, problems + [warning for note in notes if (warning := pitch_warning(note))]


def bundled_notes(assets_dir=ASSETS_DIR) -> list[Note]:
    """The example notes listed in assets/notes.json (rendered by scripts/build_assets.py)."""
    assets_dir = Path(assets_dir)
    index = json.loads((assets_dir / NOTES_INDEX).read_text())
    return [Note(id=entry["name"], name=entry["name"], audio=load_audio(assets_dir / entry["file"]),
                 family=entry["family"], pitch=entry["pitch"], source=entry["source"]) for entry in index]


def add_notes(session: dict[str, Note], new: list[Note], taken_names: set[str] = frozenset()) -> dict[str, Note]:
    """The session's notes with `new` added; the same audio twice is kept once, clashing names get a suffix."""
    session = dict(session)
    if len(session) + len({note.id for note in new} - set(session)) > MAX_SESSION_NOTES:
        raise ExplorerError(f"Up to {MAX_SESSION_NOTES} notes of your own can be kept; this would make "
                            f"{len(session) + len(new)}. Reload the page to start afresh.")
    names = set(taken_names) | {note.name for note in session.values()}
    for note in new:
        if note.id in session:
            continue
        name, copy = note.name, 2
        while name in names:
            name, copy = f"{note.name} ({copy})", copy + 1
        names.add(name)
        session[note.id] = Note(id=note.id, name=name, audio=note.audio, family=note.family, pitch=note.pitch,
                                source=note.source)
    return session


def with_pitch(session: dict[str, Note], note_id: str, pitch) -> dict[str, Note]:
    """The session with its note `note_id` labelled at MIDI `pitch`: a wrong pitch estimate corrected, so the
    decoders that take a pitch play it there."""
    if note_id not in session:
        raise ExplorerError("Only your own notes can be given another pitch; the examples keep their dataset's "
                            "labels." if note_id else "Choose one of your notes first.")
    try:
        pitch = float(pitch)
    except (TypeError, ValueError):
        pitch = float("nan")
    if not (0 <= pitch <= 127 and pitch == int(pitch)):
        raise ExplorerError("A pitch is a whole MIDI note number from 0 to 127 (60 is middle C).")
    return {**session, note_id: replace(session[note_id], pitch=int(pitch))}


# --- models ------------------------------------------------------------------------------------------------------

def checkpoints_dir() -> Path:
    return Path(os.environ.get(CHECKPOINTS_ENV, DEFAULT_CHECKPOINTS_DIR))


def list_checkpoints(directory) -> dict[str, list[tuple[str, str]]]:
    """{kind: [(name, path)]} of the readable checkpoints in `directory` (reads only their JSON halves)."""
    found = {kind: [] for kind in MODEL_KINDS}
    for json_path in sorted(Path(directory).glob("*.json")):
        weights_path, _ = checkpoint_paths(json_path)
        try:
            kind = read_description(json_path)["kind"]
        except CheckpointError:
            continue  # some other JSON file, or a half-written checkpoint
        if weights_path.is_file():
            found[kind].append((json_path.stem, str(json_path.with_suffix(""))))
    return found


@lru_cache(maxsize=4)
def _load_model(path: str, modified: float) -> LoadedModel:
    model, metadata = load_checkpoint(path)
    return LoadedModel(model=model, kind=read_description(path)["kind"], name=Path(path).name,
                       fingerprint=weights_fingerprint(path), metadata=metadata,
                       decoding=decoding_for(model, decoder_dtype(next(model.parameters()).device)))


def load_model(path) -> LoadedModel:
    """Loaded once per file version (a retrained checkpoint under the same name is read again)."""
    weights_path, _ = checkpoint_paths(path)
    if not weights_path.is_file():
        raise CheckpointError(f"Checkpoint weights {weights_path} are missing.")
    return _load_model(str(Path(path)), weights_path.stat().st_mtime)


_checked = LRUCache(CHECKS_KEPT)  # (path, versions of both files) -> "" or why it cannot be loaded


def file_version(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def checkpoint_problem(path) -> str:
    """Why the checkpoint at `path` cannot be used, or "" when it loads; each version of its files is tried once."""
    key = (str(path), *(file_version(file) for file in checkpoint_paths(path)))
    problem = _checked.get(key)
    if problem is None:
        try:
            load_model(path)
            problem = ""
        except (ValueError, TypeError, RuntimeError) as error:  # CheckpointError, or a config the model rejects
            problem = str(error)
        _checked.put(key, problem)
    return problem


def broken_checkpoints(directory) -> dict[str, str]:
    """{name: why it cannot be used} of each checkpoint in `directory` whose weights exist but do not load."""
    return {path.stem: problem for path in sorted(Path(directory).glob("*.safetensors"))
            if (problem := checkpoint_problem(path.with_suffix("")))}


# --- encoding and decoding ---------------------------------------------------------------------------------------

_encodings = LRUCache(ENCODE_CACHE_SIZE)
_decodings = LRUCache(DECODE_CACHE_SIZE)


@torch.no_grad()
def encode_notes(loaded: LoadedModel, notes: list[Note], progress: Progress | None = None,
                 dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Z of every note: [N, frames, 16] for WaveNet (its encoder in `dtype`), [N, 1984] for the spectral
    baseline. A note's Z is computed once and kept."""
    keys = [(loaded.fingerprint, audio_digest(note.audio)) for note in notes]
    missing = [i for i, key in enumerate(keys) if _encodings.get(key) is None]
    for start in range(0, len(missing), ENCODE_BATCH):
        chunk = missing[start:start + ENCODE_BATCH]
        audio = torch.from_numpy(np.stack([notes[i].audio for i in chunk]))
        z = (loaded.model.encode(audio, dtype) if loaded.kind == "wavenet" else loaded.model.encode(audio)).numpy()
        for i, z_i in zip(chunk, z):
            _encodings.put(keys[i], z_i)
        if progress:
            progress(start + len(chunk), len(missing))
    return np.stack([_encodings.get(key) for key in keys])


def check_pitches(loaded: LoadedModel, pitches: list[int | None], names: list[str]) -> None:
    """Refuses notes without a pitch for a decoder that needs one, naming the first."""
    unknown = [name for name, pitch in zip(names, pitches) if pitch is None]
    if loaded.needs_pitch and unknown:
        raise ExplorerError(f"{loaded.name} needs each note's pitch, but none was found in '{unknown[0]}'; "
                            "choose another note or a decoder that does not need one.")


def pitch_tensor(loaded: LoadedModel, pitches: list[int | None], names: list[str]) -> torch.Tensor | None:
    if not loaded.needs_pitch:
        return None
    check_pitches(loaded, pitches, names)
    return torch.tensor(pitches)


def decode(loaded: LoadedModel, z: np.ndarray, pitches: list[int | None] | None = None, names=None,
           temperature: float = 1.0, length: int = NOTE_LENGTH, seed: int = 0,
           progress: Progress | None = None) -> np.ndarray:
    """Audio [N, length] of each Z; what was decoded before with the same settings comes from the cache,
    everything else is decoded in one batch."""
    z = np.asarray(z, dtype=np.float32)
    pitches = list(pitches) if pitches is not None else [None] * len(z)
    names = names or [f"note {i + 1}" for i in range(len(z))]
    if not 1 <= length <= NOTE_LENGTH:
        raise ExplorerError(f"Length must be between 1 sample and {NOTE_LENGTH / SAMPLE_RATE:g} s.")
    keys = [(loaded.fingerprint, audio_digest(z_i), pitch, float(temperature), length, seed)
            for z_i, pitch in zip(z, pitches)]
    missing = [i for i, key in enumerate(keys) if _decodings.get(key) is None]
    if missing:
        pitch = pitch_tensor(loaded, [pitches[i] for i in missing], [names[i] for i in missing])
        start = time.perf_counter()
        audio = loaded.decoding.decode(torch.from_numpy(z[missing]), pitch, length, temperature, seed, progress)
        loaded.decoding.record(len(missing), length, time.perf_counter() - start)
        broken = [names[i] for i, audio_i in zip(missing, audio) if not np.isfinite(audio_i).all()]
        if broken:  # never cached, never played
            raise ExplorerError(f"{loaded.name} decoded NaN or infinite samples for {broken[0]}; "
                                "its weights are probably corrupt.")
        for i, audio_i in zip(missing, audio):
            _decodings.put(keys[i], np.asarray(audio_i, dtype=np.float32))
    return np.stack([_decodings.get(key) for key in keys])


WARM_UP_DONE = "Warm-up done: examples encoded, decoders timed"  # the app's log line once clicks only decode
SLOW_DECODE_SECONDS = 300  # beyond this a decode is no longer something to wait for in a browser


def decode_cost_message(seconds: float, cells: int, cell_seconds: float, decoder: str,
                        pitches: int | None = None) -> str:
    """What the page says before a decode of `cells` cells; a model this machine cannot run interactively gets a
    warning. With `pitches`, a multigrid: every cell at that many pitches, all decoded afresh (too many notes to
    cache) and refused beyond SLOW_DECODE_SECONDS."""
    takes = f"with the {decoder} decoder takes **{describe_duration(seconds)}** on this machine"
    if pitches is None:
        message = f"Decoding {cells} cells of {cell_seconds:g} s {takes} (less for cells decoded before)."
        if seconds > SLOW_DECODE_SECONDS:
            message = ("⚠️ **This model is too slow for this machine to use interactively** (the paper-size "
                       "WaveNet needs a GPU): shorten the length or use the small model. " + message)
        return message
    message = (f"Decoding {cells} cells at {pitches} pitch{'es' if pitches > 1 else ''} ({cells * pitches} sounds) "
               f"of {cell_seconds:g} s {takes}.")
    if seconds > SLOW_DECODE_SECONDS:
        message = (f"⚠️ **Too long to decode here** (the limit is {SLOW_DECODE_SECONDS // 60} min): choose the "
                   "DDSP decoder, fewer cells or fewer pitches. " + message)
    return message


# --- the map -----------------------------------------------------------------------------------------------------

def compute_map(wavenet: LoadedModel, notes: list[Note], progress: Progress | None = None) -> EmbeddingMap:
    """A fresh map of `notes` in the space of this WaveNet's encoder (slow: encodes every note, fits UMAP)."""
    if wavenet.kind != "wavenet":
        raise ExplorerError("The map is drawn in the WaveNet's embedding space; choose a WaveNet checkpoint.")
    return build_map(encode_notes(wavenet, notes, progress), checkpoint=wavenet.fingerprint,
                     names=[note.id for note in notes], families=[note.family for note in notes],
                     pitches=[note.pitch if note.pitch is not None else -1 for note in notes],
                     sources=[note.source for note in notes])


# --- grids and export --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Grid:
    corners: list[Note]
    weights: np.ndarray  # [cells, corners]
    labels: list[str]  # one per cell, row-major
    rule: str

    def mixes(self, shown: float = 0.05) -> list[str]:
        """What each cell is made of, e.g. "A 75 % + B 25 %": the corners (A, B, C, D) weighing at least
        `shown`, heaviest first."""
        return [" + ".join(f"{'ABCD'[corner]} {weights[corner]:.0%}".replace("%", " %")
                           for corner in np.argsort(-weights, kind="stable") if weights[corner] >= shown)
                for weights in self.weights]


def make_grid(corners: list[Note], size: int, rule: str = "bilinear") -> Grid:
    """Two corners: a line of `size` steps; four corners (top-left, top-right, bottom-left, bottom-right): a
    size x size grid mixed by `rule` ("bilinear" or "distance", Open NSynth Super's)."""
    if len(corners) == 2:
        weights = line_weights(size)
        labels = [f"step{i + 1}" for i in range(size)]
    elif len(corners) == 4:
        weights = grid_weights(size, rule).reshape(size * size, 4)
        labels = cell_labels(size)
    else:
        raise ExplorerError(f"Choose 2 notes for a line or 4 for a grid, not {len(corners)}.")
    return Grid(corners=list(corners), weights=weights, labels=labels, rule=rule if len(corners) == 4 else "line")


def grid_size(value) -> int:
    """Cells per side as a page or an API caller gives it: a whole number of GRID_SIZES (3.0 is taken as 3)."""
    try:
        size = float(value)
    except (TypeError, ValueError):
        size = math.nan
    if not (size.is_integer() and int(size) in GRID_SIZES):
        raise ExplorerError(f"The grid size must be a whole number from {min(GRID_SIZES)} to {max(GRID_SIZES)}, "
                            f"not {value!r}.")
    return int(size)


def grid_pitches(grid: Grid) -> list[int | None]:
    """Each cell takes the pitch of the corner it leans on most (a pitch-conditioned decoder needs one)."""
    return [grid.corners[int(np.argmax(w))].pitch for w in grid.weights]


def played_pitches(pitches: list[int | None], pitch: int | None = None, octaves: int = 0) -> list[int | None]:
    """The pitch each note is decoded at: `pitch` for all of them when given, else each note's own shifted by
    `octaves` (the pitch-conditioned decoders play any timbre at any pitch)."""
    if pitch is not None:
        return [int(pitch)] * len(pitches)
    return [None if own is None else own + 12 * int(octaves) for own in pitches]


def grid_z(loaded: LoadedModel, grid: Grid) -> np.ndarray:
    return mix(encode_notes(loaded, grid.corners), grid.weights)


# --- the shared state of the app ---------------------------------------------------------------------------------

class Explorer:
    """What all visitors share: the bundled notes, the checkpoints, and one map per WaveNet encoder."""

    def __init__(self, checkpoints=None, assets_dir=ASSETS_DIR, outputs=None):
        self.checkpoints_dir = Path(checkpoints) if checkpoints is not None else checkpoints_dir()
        self.outputs_dir = Path(outputs) if outputs is not None else outputs_dir()
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
        self._positions = LRUCache(ENCODE_CACHE_SIZE)

    def checkpoints(self) -> dict[str, list[tuple[str, str]]]:
        """{kind: [(name, path)]} of the checkpoints that load; broken ones are left out (see status())."""
        return {kind: [(name, path) for name, path in found if not checkpoint_problem(path)]
                for kind, found in list_checkpoints(self.checkpoints_dir).items()}

    def status(self) -> str:
        """Sentences for the page about which trained models are available and which files were skipped."""
        found = self.checkpoints()
        missing = [label for kind, label in (("wavenet", "WaveNet"), ("spectral", "spectral baseline"),
                                                          ("ddsp", "DDSP"))
                   if not found[kind]]
        lines = [f"**Skipped checkpoint `{name}`:** {problem}"
                 for name, problem in broken_checkpoints(self.checkpoints_dir).items()]
        if missing:
            lines.append(f"**No trained {' or '.join(missing)} checkpoint found in `{self.checkpoints_dir}/`.** "
                         "Encoding and decoding need one: train a model with the scripts in `train/` "
                         "(see the About tab) and put its `.safetensors` and `.json` files there.")
        return "  \n".join(lines)

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
        if not notes:
            return np.zeros((0, 2), np.float32)
        keys = [(wavenet.fingerprint, audio_digest(note.audio)) for note in notes]
        missing = [i for i, key in enumerate(keys) if self._positions.get(key) is None]
        if missing:
            placed = self.map_for(wavenet).place(note_features(encode_notes(wavenet, [notes[i] for i in missing])))
            for i, position in zip(missing, placed):
                self._positions.put(keys[i], position)
        return np.stack([self._positions.get(key) for key in keys])

    def place_grid(self, wavenet: LoadedModel, grid: Grid) -> np.ndarray:
        """Where each cell's mixture lies: the time average is linear, so mixing features mixes Z."""
        features = note_features(encode_notes(wavenet, grid.corners))
        return self.map_for(wavenet).place(grid.weights.astype(np.float32) @ features)

    def trajectory(self, wavenet: LoadedModel, note: Note) -> np.ndarray:
        return self.map_for(wavenet).trajectory(encode_notes(wavenet, [note])[0])

    def decode_grid(self, loaded: LoadedModel, encoder: LoadedModel, grid: Grid, temperature: float, length: int,
                    progress: Progress | None = None, pitch: int | None = None,
                    octaves: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(audio [cells, length], Z [cells, ...]) of every cell, decoded in one batch; `encoder` is the model
        whose Z the decoder reads (see encoder_for); pitch / octaves: see played_pitches."""
        if pitch is None:  # cells take their corners' pitches: a missing one is named by its note
            check_pitches(loaded, [note.pitch for note in grid.corners], [note.name for note in grid.corners])
        z = grid_z(encoder, grid)
        pitches = played_pitches(grid_pitches(grid), pitch, octaves)
        audio = decode(loaded, z, pitches, grid.labels, temperature, length, progress=progress)
        return audio, z

    def reconstruct(self, loaded: LoadedModel, encoder: LoadedModel, note: Note, temperature: float, length: int,
                    progress: Progress | None = None, pitch: int | None = None, octaves: int = 0) -> np.ndarray:
        z = encode_notes(encoder, [note])
        pitches = played_pitches([note.pitch], pitch, octaves)
        return decode(loaded, z, pitches, [note.name], temperature, length, progress=progress)[0]

    def multigrid(self, loaded: LoadedModel, encoder: LoadedModel, corners: list[Note], size: int,
                  pitches=ONS_PITCHES, length: int = NOTE_LENGTH, rule: str = "distance", temperature: float = 1.0,
                  progress: Progress | None = None) -> Multigrid:
        """Every cell of a size x size grid between four corner notes at every pitch (multigrid.py); not cached:
        1 296 notes would flush the decode cache."""
        if len(corners) != 4:
            raise ExplorerError(f"A multigrid needs four corner notes, not {len(corners)}.")
        return decode_multigrid(loaded.decoding, encode_notes(encoder, corners), grid_size(size), pitches, length,
                                rule, temperature, progress=progress)

    def map_blend(self, wavenet: LoadedModel, point) -> tuple[MapBlend, list[Note]]:
        """The blend of the bundled notes nearest to `point` (x, y) of this WaveNet's map (map_points' rule),
        and those notes, nearest first. Only the neighbours are encoded; a point off any map is refused."""
        point = map_point(*point)
        embedding_map = self.map_for(wavenet, placing=False)
        nearest, weights = neighbour_weights(embedding_map.positions, point)
        notes = [self.bundled[str(embedding_map.names[i])] for i in nearest]
        return MapBlend(z=mix(encode_notes(wavenet, notes), weights), neighbours=nearest, weights=weights), notes

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
        audio = decode(loaded, blend.z[None], pitches, ["map point"], temperature, length, progress=progress)[0]
        return audio, blend, notes


def encoder_for(decoder: LoadedModel, wavenet: LoadedModel | None) -> LoadedModel:
    """The model whose Z `decoder` reads: its own encoder's, or the WaveNet's (the DDSP decoder). A decoder
    trained on another WaveNet encoder's Z is refused: it would hear a code it does not know."""
    if decoder.decoding.own_encoder:
        return decoder
    if wavenet is None:
        raise ExplorerError(f"The {decoder.decoding.label} decoder reads a WaveNet encoder's Z: choose a WaveNet "
                            "checkpoint.")
    trained_on = decoder.metadata.get("encoder")
    if trained_on and trained_on != wavenet.fingerprint:
        raise ExplorerError(f"{decoder.name} was trained on the Z of another WaveNet encoder than {wavenet.name}'s; "
                            "choose the WaveNet checkpoint it was trained with.")
    return wavenet


def describe_model(loaded: LoadedModel) -> str:
    """One line for the page: what the checkpoint is and, for a WaveNet, how far back its decoder hears."""
    parameters = sum(p.numel() for p in loaded.model.parameters())
    line = f"`{loaded.name}`: {loaded.kind}, {parameters:,} parameters"
    samples = getattr(loaded.model.config, "receptive_field", None)  # an autoregressive decoder's
    if samples:
        line += f", receptive field {samples} samples ({1000 * samples / SAMPLE_RATE:.0f} ms)"
    if "step" in loaded.metadata:  # written by train/train.py; an imported checkpoint may not say
        line += f", trained for {loaded.metadata['step']:,} steps"
    return line
