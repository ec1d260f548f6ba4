"""A visitor's own notes as one .npz file (audio, names, pitches, families, sources), so a restart of the server
or a reload of the page need not lose them.

The file comes back from a visitor, so loading trusts nothing in it and checks it before unpacking it: from the
zip's own records, its arrays' names and count, that no array's bytes overlap another's (a zip bomb's trick) and
what each would unpack to, against the largest archive save_notes writes (archive_budget); from each array's .npy
header, its dtype and shape; only then its data, and then its values. Pickled data is never loaded."""

import io
import math
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from nsynth_core.audio.core import NOTE_LENGTH
from nsynth_core.explorer.notes import (MAX_SESSION_NOTES, ExplorerError, Note, audio_digest, held_once,
                                        refuse_silence)
from nsynth_core.exports.files import write_errors_explained

FIELDS = ("audio", "names", "pitches", "families", "sources")
SOURCES = ("upload", "microphone")
MAX_NAME_CHARACTERS = 200
NO_PITCH = -1
MAX_ZIP_COMMENT = 0xFFFF  # bytes: a zip's end record may carry a comment this long
# The name, extra fields and comment of one array in the zip's own records: np.savez's take under 100 bytes.
RECORD_ROOM = 1024
COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what np.savez and np.savez_compressed write
ENCRYPTED = 0x1  # bit 0 of a zip record's flags
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
SHOWN_CHARACTERS = 40  # of a file's or a note's name quoted in a message, which stays one short sentence
MB = 2 ** 20


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


def largest_arrays() -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Each array's dtype and shape in the largest archive save_notes writes: MAX_SESSION_NOTES notes whose names
    and families are MAX_NAME_CHARACTERS long."""
    notes, text = (MAX_SESSION_NOTES,), np.dtype(f"<U{MAX_NAME_CHARACTERS}")
    return {"audio": (np.dtype(np.float32), (MAX_SESSION_NOTES, NOTE_LENGTH)), "names": (text, notes),
            "pitches": (np.dtype(np.int64), notes), "families": (text, notes),
            "sources": (np.dtype(f"<U{max(map(len, SOURCES))}"), notes)}


def npy_bytes(dtype: np.dtype, shape: tuple[int, ...]) -> int:
    """Bytes of a .npy file of `dtype` and `shape` as numpy writes it: its header, then the data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                  "fortran_order": False, "shape": shape})
    return header.tell() + math.prod(shape) * dtype.itemsize


def array_budgets() -> dict[str, int]:
    """The most bytes each array may unpack to: what it holds in the largest archive save_notes writes."""
    return {field: npy_bytes(dtype, shape) for field, (dtype, shape) in largest_arrays().items()}


def archive_budget() -> int:
    """The most bytes a file of saved notes may unpack to."""
    return sum(array_budgets().values())


def max_file_bytes() -> int:
    """The largest file of saved notes: its arrays stored, and the zip's records around them."""
    records = len(FIELDS) * (zipfile.sizeFileHeader + zipfile.sizeCentralDir + 2 * RECORD_ROOM)
    return archive_budget() + records + zipfile.sizeEndCentDir + MAX_ZIP_COMMENT


def expected(field: str, notes: str) -> str:
    """What saved notes hold in `field` for `notes` notes: a count, or a range while the count is not known."""
    return {"audio": f"{notes} notes of {NOTE_LENGTH} float32 samples within [-1, 1]",
            "names": f"{notes} texts of at most {MAX_NAME_CHARACTERS} characters, one for each note",
            "pitches": f"{notes} MIDI pitches (int64, 0 to 127, or {NO_PITCH} for none), one for each note",
            "families": f"{notes} texts of at most {MAX_NAME_CHARACTERS} characters, one for each note",
            "sources": f"{notes} texts among {', '.join(SOURCES)}, one for each note"}[field]


def briefly(text, limit: int = SHOWN_CHARACTERS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def size_text(size: int) -> str:
    return f"{size / MB:.1f} MB" if size >= MB / 10 else f"{size / 1024:.1f} kB"


def load_notes(path) -> list[Note]:
    """The notes saved in `path` by save_notes; ArchiveError when the file is anything else."""
    path = Path(path)
    shown = briefly(path.name)
    what = f"a .npz (zip) of {len(FIELDS)} arrays ({', '.join(FIELDS)})"
    if not path.is_file():
        raise ArchiveError(f"'{shown}' is not a file.")
    size = path.stat().st_size
    with open(path, "rb") as file:
        if file.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX:
            raise ArchiveError(f"'{shown}' is a single .npy array, not saved notes: those are {what}.")
    directory = zip_directory(path, size)
    if directory is None:
        raise ArchiveError(f"'{shown}' is not saved notes: those are {what}, and this file is no zip.")
    members, directory_bytes, directory_start = directory
    if members != len(FIELDS):
        raise ArchiveError(f"'{shown}' holds {members} arrays; saved notes hold {len(FIELDS)} "
                           f"({', '.join(FIELDS)}).")
    if directory_bytes > (largest := len(FIELDS) * (zipfile.sizeCentralDir + RECORD_ROOM)):
        raise ArchiveError(f"The zip directory of '{shown}' takes {size_text(directory_bytes)}; that of saved "
                           f"notes takes at most {size_text(largest)}.")
    try:
        with zipfile.ZipFile(path) as archive:
            infos = checked_members(archive, path, shown, directory_start)
            if size > max_file_bytes():  # its arrays fit, but not what lies around them
                raise ArchiveError(f"'{shown}' takes {size_text(size)}; a file of saved notes takes at most "
                                   f"{size_text(max_file_bytes())}.")
            arrays = {}
            for field in FIELDS:  # the audio first: it says how many notes the others describe
                arrays[field] = read_array(archive.open(infos[field]), infos[field], field, shown,
                                           len(arrays["audio"]) if arrays else None)
    except ArchiveError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
        raise ArchiveError(f"'{shown}' is a damaged zip ({briefly(error, 80)}); saved notes are {what}.") from None
    return checked_notes(arrays, shown)


def zip_directory(path: Path, size: int) -> tuple[int, int, int] | None:
    """(arrays, bytes of the zip directory, where it starts) as the zip's end record says, or None when `path`
    has none. Read before zipfile reads the directory itself: thousands of entries would cost it seconds."""
    start = max(0, size - zipfile.sizeEndCentDir - MAX_ZIP_COMMENT)
    with open(path, "rb") as file:
        file.seek(start)
        tail = file.read()
    at = tail.rfind(zipfile.stringEndArchive)
    if at < 0 or len(tail) - at < zipfile.sizeEndCentDir:
        return None
    _, _, _, _, members, directory_bytes, _, _ = struct.unpack(zipfile.structEndArchive,
                                                               tail[at:at + zipfile.sizeEndCentDir])
    return members, directory_bytes, start + at - directory_bytes


def checked_members(archive: zipfile.ZipFile, path: Path, shown: str,
                    directory_start: int) -> dict[str, zipfile.ZipInfo]:
    """The archive's arrays by field, once the zip's records show them to be those of saved notes: their names,
    how they are compressed, that their bytes overlap neither each other nor the directory, and that none would
    unpack to more than it holds in the largest archive save_notes writes."""
    names = sorted(info.filename for info in archive.infolist())
    if names != sorted(f"{field}.npy" for field in FIELDS):
        raise ArchiveError(f"'{shown}' holds {briefly(', '.join(names), 80)}; saved notes hold "
                           f"{', '.join(f'{field}.npy' for field in FIELDS)}.")
    infos = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
    for field, info in infos.items():
        if info.flag_bits & ENCRYPTED:
            raise ArchiveError(f"The {field} array in '{shown}' is encrypted; saved notes are not.")
        if info.compress_type not in COMPRESSIONS:
            raise ArchiveError(f"The {field} array in '{shown}' is compressed by zip method {info.compress_type}; "
                               "saved notes are stored or deflated (methods 0 and 8).")
    refuse_overlaps(path, infos, shown, directory_start)
    for field, budget in array_budgets().items():
        info = infos[field]
        if info.file_size > budget:
            ratio = (f", {info.file_size / max(info.compress_size, 1):.0f} times its "
                     f"{size_text(info.compress_size)} compressed" if info.compress_type == zipfile.ZIP_DEFLATED
                     else "")
            raise ArchiveError(f"The {field} array in '{shown}' would unpack to {size_text(info.file_size)}{ratio}; "
                               f"saved notes hold at most {size_text(budget)} there "
                               f"({expected(field, f'1 to {MAX_SESSION_NOTES}')}).")
    return infos


def refuse_overlaps(path: Path, infos: dict[str, zipfile.ZipInfo], shown: str, directory_start: int) -> None:
    """Refuses an array whose compressed bytes run on into another array's or into the zip directory: a zip
    bomb's way of unpacking one stream many times over."""
    spans = []
    with open(path, "rb") as file:
        for field, info in infos.items():
            file.seek(info.header_offset)
            header = file.read(zipfile.sizeFileHeader)
            if len(header) < zipfile.sizeFileHeader or not header.startswith(zipfile.stringFileHeader):
                raise zipfile.BadZipFile(f"the {field} array's local header is missing")
            *_, name_length, extra_length = struct.unpack(zipfile.structFileHeader, header)
            data_start = info.header_offset + zipfile.sizeFileHeader + name_length + extra_length
            spans.append((info.header_offset, data_start + info.compress_size, f"the {field} array"))
    spans.sort()
    for (_, end, what), (next_start, _, next_what) in zip(spans, [*spans[1:], (directory_start, 0, "the zip "
                                                                                                  "directory")]):
        if end > next_start:
            raise ArchiveError(f"{what.capitalize()} in '{shown}' overlaps {next_what} (a zip bomb's trick: one "
                               "stream unpacked many times); each array of saved notes has bytes of its own.")


def read_array(stream, info: zipfile.ZipInfo, field: str, shown: str, notes: int | None) -> np.ndarray:
    """`field`'s array from its member `stream`, its .npy header checked before any data is read: the dtype and
    shape saved notes hold (`notes` of them, once the audio has said), and as many bytes as the zip's records
    say the member unpacks to."""
    with stream:
        holds = expected(field, f"1 to {MAX_SESSION_NOTES}" if notes is None else str(notes))
        try:
            version = np.lib.format.read_magic(stream)
            if version not in HEADER_READERS:
                raise ValueError(f".npy format version {version}")
            shape, fortran_order, dtype = HEADER_READERS[version](stream)
        except ValueError as error:
            raise ArchiveError(f"The {field} array in '{shown}' is no .npy array ({briefly(error, 60)}); saved "
                               f"notes hold {holds}.") from None
        declared = f"declares shape {briefly(shape)} of {briefly(dtype)}"
        if dtype.hasobject:
            raise ArchiveError(f"The {field} array in '{shown}' holds Python objects (pickled data), which are "
                               f"never loaded; saved notes hold {holds}.")
        if fortran_order or not fits(field, dtype, shape, notes):
            raise ArchiveError(f"The {field} array in '{shown}' {declared}; saved notes hold {holds}.")
        data_bytes = math.prod(shape) * dtype.itemsize
        if stream.tell() + data_bytes != info.file_size:
            raise ArchiveError(f"The {field} array in '{shown}' {declared}, {size_text(data_bytes)}, but unpacks "
                               f"to {size_text(info.file_size - stream.tell())} of data; saved notes' agree.")
        array = np.empty(shape, dtype)
        if stream.readinto(array.view(np.uint8).reshape(-1)) != data_bytes:
            raise ArchiveError(f"The {field} array in '{shown}' ends early; saved notes hold {holds}.")
    return array


def fits(field: str, dtype: np.dtype, shape: tuple, notes: int | None) -> bool:
    """Whether saved notes may hold `dtype` and `shape` in `field`: `notes` of them, or 1 to MAX_SESSION_NOTES
    when `notes` is None; texts as long as in the largest archive, or shorter."""
    largest_dtype, largest_shape = largest_arrays()[field]
    if dtype.kind == "U":
        right_dtype = largest_dtype.kind == "U" and dtype.itemsize <= largest_dtype.itemsize
    else:
        right_dtype = dtype == largest_dtype
    right_count = 1 <= shape[0] <= largest_shape[0] if notes is None else shape[0] == notes
    return right_dtype and len(shape) == len(largest_shape) and right_count and shape[1:] == largest_shape[1:]


def checked_notes(arrays: dict[str, np.ndarray], shown: str) -> list[Note]:
    """The notes of arrays whose dtypes and shapes are checked, once their values are: audio within [-1, 1] and
    not silent (as an upload must be), pitches in MIDI's range, sources among SOURCES."""
    audio, names, pitches, families, sources = (arrays[field] for field in FIELDS)
    notes = str(len(audio))
    if not np.isfinite(audio).all() or np.abs(audio).max() > 1:
        raise ArchiveError(f"The audio array in '{shown}' has samples that are not finite or beyond [-1, 1]; "
                           f"saved notes hold {expected('audio', notes)}.")
    if wrong := [pitch for pitch in pitches if not (pitch == NO_PITCH or 0 <= pitch <= 127)]:
        raise ArchiveError(f"The pitches array in '{shown}' holds {wrong[0]}; saved notes hold "
                           f"{expected('pitches', notes)}.")
    if wrong := [source for source in sources if source not in SOURCES]:
        raise ArchiveError(f"The sources array in '{shown}' holds '{briefly(wrong[0])}'; saved notes hold "
                           f"{expected('sources', notes)}.")
    for number, (name, note_audio) in enumerate(zip(names, audio), 1):
        refuse_silence(note_audio, f"The audio of note {number} ('{briefly(name)}') in '{shown}'")
    digests = [audio_digest(audio_i) for audio_i in audio]
    # Each note's own array (a row would keep the whole archive's alive), shared with any note of the same samples.
    return [Note(id=f"{source}-{digest}", name=str(name), audio=held_once(audio_i.copy(), digest),
                 family=str(family), pitch=None if pitch == NO_PITCH else int(pitch), source=str(source))
            for audio_i, digest, name, pitch, family, source in zip(audio, digests, names, pitches, families, sources)]
