"""Trained models as the explorer uses them: the checkpoints of a folder (the ones that load, and why the others
do not), each loaded once per file version, and what is done with one: notes encoded to Z, Z decoded to audio.

Both keep what they computed in a bounded cache behind the one function that computes it (encode_notes,
decode_z), so going back to a note or a cell computes nothing; the Z itself travels with its note (EncodedNote).
"""

import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from nsynth_core.audio.core import NOTE_LENGTH, SAMPLE_RATE
from nsynth_core.engine.precision import decoder_dtype, encoder_dtype
from nsynth_core.explorer.decoding import Decoding, decoding_for
from nsynth_core.explorer.lru_cache import LRUCache
from nsynth_core.explorer.notes import VISITOR_SOURCES, EncodedNote, ExplorerError, Note, audio_digest
from nsynth_core.models.checkpoint import (MODEL_KINDS, CheckpointError, checkpoint_files, load_checkpoint,
                                           read_description, weights_fingerprint)

CHECKPOINTS_ENV = "NSYNTH_CHECKPOINTS"
DEFAULT_CHECKPOINTS_DIR = Path("checkpoints")
ENCODE_BATCH = 8  # notes per encoder pass: bounds memory of the paper encoder's activations
DECODE_CACHE_SIZE = 256  # decoded notes (4 s each, 256 kB): about 64 MB at most
ENCODE_CACHE_SIZE = 1024  # Z of a note: 8 kB, so about 8 MB at most
CHECKS_KEPT = 64  # checkpoint file versions whose loadability is remembered
SLOW_DECODE_SECONDS = 300  # beyond this a decode is no longer something to wait for in a browser

Progress = Callable[[int, int], None]


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


# --- checkpoints -------------------------------------------------------------------------------------------------

def checkpoints_dir() -> Path:
    return Path(os.environ.get(CHECKPOINTS_ENV, DEFAULT_CHECKPOINTS_DIR))


def list_checkpoints(directory) -> dict[str, list[tuple[str, str]]]:
    """{kind: [(name, path)]} of the readable checkpoints in `directory` (reads only their JSON halves)."""
    found = {kind: [] for kind in MODEL_KINDS}
    for json_path in sorted(Path(directory).glob("*.json")):
        weights_path, _ = checkpoint_files(json_path)
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
    weights_path, _ = checkpoint_files(path)
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
    key = (str(path), *(file_version(file) for file in checkpoint_files(path)))
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


# --- encoding ----------------------------------------------------------------------------------------------------

_encodings = LRUCache(ENCODE_CACHE_SIZE)  # (encoder, precision, audio digest) -> Z; read by encode_notes only


def encoding_precision(loaded: LoadedModel, note: Note) -> torch.dtype:
    """What `loaded`'s encoder computes a note's Z in, the same whatever way the note came in: a visitor's own
    note (uploaded, recorded, or restored from a saved file) in the encoder's fast precision on this machine, as
    it is encoded while the visitor waits (engine/precision.py); an example in float32, as the shipped map and
    example grid were made."""
    if loaded.kind == "wavenet" and note.source in VISITOR_SOURCES:
        return encoder_dtype(loaded.decoding.device)
    return torch.float32


def _carries_z(note: Note, loaded: LoadedModel, precision: torch.dtype) -> bool:
    return (isinstance(note, EncodedNote) and note.encoder == loaded.fingerprint
            and note.precision == precision)


def _encoded_audio(loaded: LoadedModel, notes: list[Note], precision: torch.dtype) -> np.ndarray:
    audio = torch.from_numpy(np.stack([note.audio for note in notes]))
    with torch.no_grad():
        z = loaded.model.encode(audio, precision) if loaded.kind == "wavenet" else loaded.model.encode(audio)
    return z.numpy()


def _batches(indices: list[int], precisions: list[torch.dtype]):
    """`indices` in batches of up to ENCODE_BATCH notes, each encoded in one precision."""
    for precision in dict.fromkeys(precisions[i] for i in indices):
        alike = [i for i in indices if precisions[i] == precision]
        yield from (alike[start:start + ENCODE_BATCH] for start in range(0, len(alike), ENCODE_BATCH))


def encode_notes(loaded: LoadedModel, notes: list[Note], progress: Progress | None = None) -> list[EncodedNote]:
    """Each note with its Z from `loaded`'s encoder ([frames, 16] for a WaveNet, [1984] for the spectral
    baseline), in the note's precision (encoding_precision). A note that carries that Z keeps it; the others' Z
    come from the cache, or are computed in batches and kept there. progress(done, total) counts the notes
    computed."""
    precisions = [encoding_precision(loaded, note) for note in notes]
    carried = {i for i, note in enumerate(notes) if _carries_z(note, loaded, precisions[i])}
    keys = {i: (loaded.fingerprint, precisions[i], audio_digest(note.audio))
            for i, note in enumerate(notes) if i not in carried}
    z = {i: cached for i, key in keys.items() if (cached := _encodings.get(key)) is not None}
    missing, done = [i for i in keys if i not in z], 0
    for batch in _batches(missing, precisions):
        for i, z_i in zip(batch, _encoded_audio(loaded, [notes[i] for i in batch], precisions[batch[0]])):
            _encodings.put(keys[i], z_i)
            z[i] = z_i
        done += len(batch)
        if progress:
            progress(done, len(missing))
    return [note if i in carried else EncodedNote.of(note, z[i], loaded.fingerprint, precisions[i])
            for i, note in enumerate(notes)]


def stacked_z(notes: list[EncodedNote]) -> np.ndarray:
    """The notes' Z as one array [N, ...]."""
    return np.stack([note.z for note in notes])


# --- decoding ----------------------------------------------------------------------------------------------------

_decodings = LRUCache(DECODE_CACHE_SIZE)  # (decoder, Z digest, pitch, settings) -> audio; read by decode_z only


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


def decode_z(loaded: LoadedModel, z: np.ndarray, pitches: list[int | None] | None = None, names=None,
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
