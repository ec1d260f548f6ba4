"""A visitor's notes as read from their files."""

import shutil

from nsynth_core.explorer.notes import read_note


def test_notes_of_the_same_samples_share_one_read_only_array(write_tone, tmp_path):
    """Twenty visitors adding the same file keep its 4 s once; no visitor's note can change another's."""
    path = write_tone(frequency=440.0, seconds=1.0)
    first = read_note(path)
    again = read_note(shutil.copy(path, tmp_path / "again.wav"), source="microphone")
    other = read_note(write_tone(frequency=330.0, seconds=1.0))
    assert again.audio is first.audio and other.audio is not first.audio
    assert not first.audio.flags.writeable
