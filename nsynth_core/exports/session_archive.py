"""A visitor's own notes as one .npz file (audio, names, pitches, families, sources), so a restart of the server
or a reload of the page need not lose them. The file comes back from a visitor, so loading trusts nothing in it:
no pickles, and every array's keys, dtype, shape, count and values are checked."""

import zipfile
from pathlib import Path

import numpy as np

from nsynth_core.audio.core import NOTE_LENGTH
from nsynth_core.explorer.explorer import MAX_SESSION_NOTES, ExplorerError, Note, audio_digest
from nsynth_core.exports.files import write_errors_explained

FIELDS = ("audio", "names", "pitches", "families", "sources")
SOURCES = ("upload", "microphone")
MAX_NAME_CHARACTERS = 200
NO_PITCH = -1
# The audio of MAX_SESSION_NOTES notes (256 kB each) and room for the names: anything bigger is not ours.
MAX_ARCHIVE_BYTES = MAX_SESSION_NOTES * NOTE_LENGTH * 4 + (1 << 20)


class ArchiveError(ExplorerError):
    """A file that is not a saved set of notes; the message says what is wrong with it."""


def save_notes(notes: list[Note], path) -> Path:
    """Writes `notes` to `path` (.npz, uncompressed: audio barely compresses) and returns the path."""
    path = Path(path)
    if not notes:
        raise ArchiveError("There are no notes of your own to save yet.")
    with write_errors_explained(path.parent):
        np.savez(path, audio=np.stack([note.audio for note in notes]).astype(np.float32),
                 names=np.array([note.name for note in notes], dtype=str),
                 pitches=np.array([NO_PITCH if note.pitch is None else note.pitch for note in notes], dtype=np.int64),
                 families=np.array([note.family for note in notes], dtype=str),
                 sources=np.array([note.source for note in notes], dtype=str))
    return path


def load_notes(path) -> list[Note]:
    """The notes saved in `path` by save_notes; ArchiveError when the file is anything else."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size > MAX_ARCHIVE_BYTES:
        raise ArchiveError(f"'{path.name}' is not a file of saved notes (missing or over "
                           f"{MAX_ARCHIVE_BYTES >> 20} MB).")
    try:
        with np.load(path, allow_pickle=False) as archive:  # a pickle in it is refused, never run
            arrays = {field: archive[field] for field in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise ArchiveError(f"'{path.name}' cannot be read as saved notes ({error}).") from None
    if sorted(arrays) != sorted(FIELDS):
        raise ArchiveError(f"'{path.name}' is not a file of saved notes: it holds {sorted(arrays)}.")
    audio, names, pitches = arrays["audio"], arrays["names"], arrays["pitches"]
    count = len(audio)
    if audio.dtype != np.float32 or audio.ndim != 2 or audio.shape[1] != NOTE_LENGTH \
            or not 1 <= count <= MAX_SESSION_NOTES:
        raise ArchiveError(f"The audio in '{path.name}' is not 1 to {MAX_SESSION_NOTES} float32 notes of "
                           f"{NOTE_LENGTH} samples.")
    for field in ("names", "families", "sources"):
        if arrays[field].dtype.kind != "U" or arrays[field].shape != (count,) \
                or max(map(len, arrays[field])) > MAX_NAME_CHARACTERS:
            raise ArchiveError(f"The {field} in '{path.name}' are not {count} short texts.")
    if pitches.dtype != np.int64 or pitches.shape != (count,) or not ((pitches == NO_PITCH) | (
            (pitches >= 0) & (pitches <= 127))).all():
        raise ArchiveError(f"The pitches in '{path.name}' are not {count} MIDI pitches.")
    if not np.isfinite(audio).all() or np.abs(audio).max() > 1:
        raise ArchiveError(f"The audio in '{path.name}' has samples that are not finite or beyond [-1, 1].")
    if not set(arrays["sources"]) <= set(SOURCES):
        raise ArchiveError(f"The sources in '{path.name}' are not among {SOURCES}.")
    return [Note(id=f"{source}-{audio_digest(audio_i)}", name=str(name), audio=audio_i, family=str(family),
                 pitch=None if pitch == NO_PITCH else int(pitch), source=str(source))
            for audio_i, name, pitch, family, source in zip(audio, names, pitches, arrays["families"],
                                                             arrays["sources"])]
