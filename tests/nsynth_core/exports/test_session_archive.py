"""Saved notes (.npz) come back as they were; anything else is refused from its zip directory and its .npy headers,
before its arrays are unpacked, in one short sentence that names the array and the limit."""

import io
import re
import tracemalloc
import zipfile
from dataclasses import replace

import numpy as np
import pytest

from tests.archive_bombs import npy_bytes, write_deflate_bomb, write_overlapping_bomb
from nsynth_core.audio.core import NOTE_LENGTH, SAMPLE_RATE
from nsynth_core.explorer.notes import MAX_SESSION_NOTES, ExplorerError, Note
from nsynth_core.exports.session_archive import FIELDS, archive_budget, load_notes, save_notes

MAX_MESSAGE = 300  # characters: a refusal is one sentence a visitor reads


def tone(seconds=1.0, amplitude=0.2):
    audio = np.zeros(NOTE_LENGTH, np.float32)
    samples = int(seconds * SAMPLE_RATE)
    audio[:samples] = amplitude * np.sin(2 * np.pi * 220 * np.arange(samples) / SAMPLE_RATE)
    return audio


def note(name="tone", audio=None, pitch=57):
    return Note(id=f"upload-{name}", name=name, audio=tone() if audio is None else audio, pitch=pitch)


@pytest.fixture
def saved(tmp_path):
    return save_notes([note("tone"), note("quiet", tone(amplitude=0.01), pitch=None)], tmp_path / "notes.npz")


def arrays_of(path):
    with np.load(path) as archive:
        return {field: archive[field] for field in archive.files}


def refusal(path) -> str:
    """The message load_notes refuses `path` with, checked to be one short sentence."""
    with pytest.raises(ExplorerError) as refused:
        load_notes(path)
    message = str(refused.value)
    assert len(message) <= MAX_MESSAGE and "\n" not in message, message
    return message


def unpacked_at_most(path) -> tuple[str, int]:
    """(the refusal, the most bytes Python and numpy held at once while refusing `path`)."""
    tracemalloc.start()
    try:
        message = refusal(path)
        return message, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_saved_notes_come_back_as_they_were_also_when_compressed(saved, tmp_path):
    notes = load_notes(saved)
    assert [(n.name, n.pitch, n.source) for n in notes] == [("tone", 57, "upload"), ("quiet", None, "upload")]
    np.testing.assert_array_equal(notes[0].audio, tone())
    np.savez_compressed(tmp_path / "compressed.npz", **arrays_of(saved))  # a visitor may zip it again
    assert [n.id for n in load_notes(tmp_path / "compressed.npz")] == [n.id for n in notes]


def test_a_file_restored_twice_keeps_each_notes_audio_once(saved):
    """Each note's own array, not a row that keeps the whole archive's alive; a second restore (another visitor's)
    shares it."""
    first, again = load_notes(saved), load_notes(saved)
    assert all(a.audio is b.audio and a.audio.base is None for a, b in zip(first, again))


def test_the_budget_is_the_largest_archive_save_notes_writes(tmp_path):
    loud = tone(seconds=4.0, amplitude=0.9)
    notes = [replace(note("x" * 198 + f"{i:02d}", loud * (1 - i / 100), pitch=60), family="f" * 200,
                     source="microphone") for i in range(MAX_SESSION_NOTES)]
    path = save_notes(notes, tmp_path / "largest.npz")
    with zipfile.ZipFile(path) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    assert unpacked == archive_budget()
    assert len(load_notes(path)) == MAX_SESSION_NOTES


def test_a_deflate_bomb_is_refused_from_the_zip_directory_before_it_is_unpacked(tmp_path):
    write_deflate_bomb(tmp_path / "bomb.npz")
    message, held = unpacked_at_most(tmp_path / "bomb.npz")
    assert re.search(r"The audio array in 'bomb.npz' would unpack to 1023.9 MB, \d+ times its 1.1 MB compressed; saved "
                     r"notes hold at most 11.7 MB there \(1 to 48 notes of 64000 float32 samples", message), message
    assert held < archive_budget()


def test_overlapping_members_are_refused_before_any_is_unpacked(tmp_path):
    write_overlapping_bomb(tmp_path / "bomb.npz")
    message, held = unpacked_at_most(tmp_path / "bomb.npz")
    assert "overlap" in message and "names" in message, message
    assert held < archive_budget()


def test_a_huge_shape_declared_in_a_small_file_is_refused_from_the_header(saved, tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (10_000_000_000, NOTE_LENGTH)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("audio.npy", header.getvalue())
        for field in FIELDS[1:]:
            archive.writestr(f"{field}.npy", npy_bytes(arrays_of(saved)[field]))
    message, held = unpacked_at_most(tmp_path / "huge.npz")
    assert re.search(r"The audio array in 'huge.npz' declares shape \(10000000000, 64000\) of float32; saved notes "
                     r"hold 1 to 48 notes of 64000 float32 samples", message), message
    assert held < archive_budget()


def test_a_file_that_is_no_archive_is_named_for_what_it_is(saved, tmp_path):
    np.save(tmp_path / "audio.npy", arrays_of(saved)["audio"])
    (tmp_path / "audio.npy").rename(tmp_path / "renamed.npz")
    assert re.search(r"'renamed.npz' is a single .npy array, not saved notes: those are a .npz \(zip\) of 5 arrays",
                     refusal(tmp_path / "renamed.npz"))
    (tmp_path / "letter.npz").write_text("Dear visitor, this is a letter.")
    message = refusal(tmp_path / "letter.npz")
    assert "'letter.npz' is not saved notes: those are a .npz (zip) of 5 arrays" in message
    assert "pickle" not in message


def test_a_damaged_archive_says_so(saved, tmp_path):
    damaged = bytearray(saved.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # a byte of the audio: its CRC-32 no longer matches
    (tmp_path / "damaged.npz").write_bytes(damaged)
    assert "'damaged.npz' is a damaged zip (Bad CRC-32 for file 'audio.npy')" in refusal(tmp_path / "damaged.npz")


def test_an_archive_of_many_members_gets_a_short_message(saved, tmp_path):
    with zipfile.ZipFile(tmp_path / "many.npz", "w") as archive:
        for i in range(10_000):
            archive.writestr(f"member{i}.npy", b"")
    assert ("'many.npz' holds 10000 arrays; saved notes hold 5 (audio, names, pitches, families, sources)"
            in refusal(tmp_path / "many.npz"))


def test_an_all_silent_note_is_refused_as_an_upload_would_be(tmp_path):
    path = save_notes([note("tone"), note("hush", np.zeros(NOTE_LENGTH, np.float32))], tmp_path / "notes.npz")
    assert re.search(r"The audio of note 2 \('hush'\) in 'notes.npz' is silent \(no sample reaches 0.0001, -80 "
                     r"dBFS\)", refusal(path))


def test_every_refusal_names_its_array_and_its_limit_in_one_short_sentence(saved, tmp_path):
    arrays = arrays_of(saved)
    long_name = tmp_path / ("n" * 250 + ".npz")
    cases = [({"audio": arrays["audio"].astype(np.float64)}, "audio", r"float32"),
             ({"audio": np.repeat(arrays["audio"], 25, axis=0)}, "audio", r"1 to 48 notes"),
             ({"audio": np.repeat(arrays["audio"], 4, axis=0)}, "names", r"hold 8 texts"),
             ({"audio": np.full_like(arrays["audio"], np.inf)}, "audio", r"\[-1, 1\]"),
             ({"pitches": np.array([300, 60])}, "pitches", r"0 to 127"),
             ({"names": np.array(["x" * 500, "y"])}, "names", r"200 characters"),
             ({"sources": np.array(["server", "upload"])}, "sources", r"upload, microphone"),
             ({"families": np.array([1, 2])}, "families", r"texts"),
             ({"names": np.array(["a", "b", "c"])}, "names", r"hold 2 texts of at most 200 characters")]
    for changes, field, limit in cases:
        np.savez(long_name, **{**arrays, **changes})
        message = refusal(long_name)
        assert re.search(fr"\b{field}\b", message) and re.search(limit, message), message
    pickled = io.BytesIO()
    np.save(pickled, np.array([object()], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(tmp_path / "pickled.npz", "w") as archive:
        archive.writestr("audio.npy", pickled.getvalue())
        for field in FIELDS[1:]:
            archive.writestr(f"{field}.npy", npy_bytes(arrays[field]))
    assert re.search(r"The audio array in 'pickled.npz' holds Python objects", refusal(tmp_path / "pickled.npz"))
