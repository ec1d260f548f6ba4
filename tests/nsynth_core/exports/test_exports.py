"""Files handed to visitors: each player's sound is a file of its own, written once."""

import numpy as np
import soundfile as sf

from nsynth_core.exports import files as exports
from nsynth_core.audio.core import SAMPLE_RATE


def test_a_sound_returned_twice_gets_a_second_file_and_the_first_is_left_as_it_was(tmp_path):
    pcm = np.round(8000 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)).astype(np.int16)
    first, = exports.wav_files(tmp_path, [pcm])
    written = first.stat()
    second, = exports.wav_files(tmp_path, [pcm])
    assert second != first  # a browser may still be fetching the first
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    for path in (first, second):
        audio, rate = sf.read(path, dtype="int16")
        assert rate == SAMPLE_RATE
        np.testing.assert_array_equal(audio, pcm)
