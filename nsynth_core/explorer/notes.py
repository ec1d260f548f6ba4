"""Notes: the bundled examples (assets/), shared by everyone, and a visitor's own (uploaded, recorded or restored
from a saved file), which live in their session. An upload is counted and weighed before any file is read.

A `Note` is 4 s of audio with its name, family and pitch; an `EncodedNote` is a note that also carries its Z from
one encoder (loaded_models.encode_notes makes them), so whoever holds the note holds its code.
"""

import hashlib
import json
import math
import os
import threading
import weakref
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable

import librosa
import numpy as np
import torch

from nsynth_core.audio.core import SILENCE_PEAK, load_audio
from nsynth_core.audio.metrics import quick_median_f0

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
NOTES_INDEX = "notes.json"
VISITOR_SOURCES = ("upload", "microphone")  # where a visitor's own notes come from (a saved file keeps these)
MAX_SESSION_NOTES = 48  # a visitor's own notes live in server memory (256 kB each)
# Each file of an upload is decoded and pitch-tracked (about a second each here) while a worker waits: one request
# must not hold it for minutes, so its files are counted and weighed before any is read.
MAX_UPLOAD_FILES = 16
MAX_REQUEST_UPLOAD_MB = 60  # all the files of one upload together
# Gradio keeps every uploaded file for an hour: a visitor's uploads together are bounded too.
MAX_SESSION_UPLOAD_MB = 150
SESSION_UPLOAD_ENV = "NSYNTH_SESSION_UPLOAD_MB"


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


@dataclass(frozen=True, eq=False, kw_only=True)
class EncodedNote(Note):
    """A note with its Z: a new name, family or pitch (dataclasses.replace) keeps it, as none changes the audio."""
    z: np.ndarray  # [frames, 16] of a WaveNet encoder, [1984] of the spectral baseline's
    encoder: str  # the fingerprint of the encoder's weights
    precision: torch.dtype  # what the encoder computed in

    @classmethod
    def of(cls, note: Note, z: np.ndarray, encoder: str, precision: torch.dtype) -> "EncodedNote":
        return cls(**{field.name: getattr(note, field.name) for field in fields(Note)}, z=z, encoder=encoder,
                   precision=precision)


def audio_digest(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


_held = weakref.WeakValueDictionary()  # audio digest -> the array the visitors' notes with those samples share
_holding = threading.Lock()


def held_once(audio: np.ndarray, digest: str) -> np.ndarray:
    """The one read-only array that every note with these samples (`digest`: audio_digest) shares while any of
    them lives: a class adding the same upload, or restoring the same saved file, keeps its 4 s once."""
    with _holding:
        held = _held.get(digest)
        if held is None:
            audio.flags.writeable = False
            _held[digest] = held = audio
        return held


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
    digest = audio_digest(audio)
    return Note(id=f"{source}-{digest}", name=name, audio=held_once(audio, digest), source=source)


def with_pitches(notes: list[Note]) -> list[Note]:
    return [replace(note, pitch=pitch) for note, pitch in zip(notes, estimated_pitches([n.audio for n in notes]))]


def estimated_pitches(audios: list[np.ndarray]) -> list[int | None]:
    return [estimate_pitch(audio) for audio in audios]


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
    if megabytes > MAX_REQUEST_UPLOAD_MB:
        raise ExplorerError(f"Upload at most {MAX_REQUEST_UPLOAD_MB} MB at a time; these files hold "
                            f"{megabytes:.0f} MB.")
    budget, used = session_upload_mb(), uploaded / 2 ** 20
    if used + megabytes > budget:
        raise ExplorerError(f"Each visitor can upload {budget:g} MB in all; you have uploaded {used:.1f} MB, so "
                            f"{max(budget - used, 0):.1f} MB more can be added, not {megabytes:.1f} MB. Reload "
                            "the page to start afresh.")


def read_uploads(paths: list, session: dict[str, Note], uploaded: int = 0,
                 prepare: Callable[[list[Note]], list[Note]] = with_pitches) -> tuple[list[Note], list[str]]:
    """(the usable notes, why each other file was skipped) of an upload that check_upload lets through; when no
    file is usable the reasons are raised, so the request fails with them. `prepare` finds the read notes'
    pitches (and may encode them: webapp/encoding_queue.py)."""
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
    return prepare(notes), problems


def bundled_notes(assets_dir=ASSETS_DIR) -> list[Note]:
    """The example notes listed in assets/notes.json (rendered by scripts/build_assets.py)."""
    assets_dir = Path(assets_dir)
    index = json.loads((assets_dir / NOTES_INDEX).read_text())
    return [Note(id=entry["name"], name=entry["name"], audio=load_audio(assets_dir / entry["file"]),
                 family=entry["family"], pitch=entry["pitch"], source=entry["source"]) for entry in index]


def add_notes(session: dict[str, Note], new: list[Note], taken_names: set[str] = frozenset()) -> dict[str, Note]:
    """The session's notes with `new` added (each keeps its Z when it has one); the same audio twice is kept once,
    clashing names get a suffix."""
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
        session[note.id] = replace(note, name=name)
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
