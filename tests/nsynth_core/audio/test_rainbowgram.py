import numpy as np
import librosa
import pytest

from webapp.figures import rainbowgram_figure
from nsynth_core.audio.rainbowgram import (BINS_PER_OCTAVE, HOP_LENGTH, OCTAVES, constant_q, log_power_and_if,
                                     rainbowgram)

SAMPLE_RATE = 16000


def tone(frequency, seconds=1.0):
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def test_image_shape_and_type():
    image = rainbowgram(tone(440.0, 4.0))
    assert image.dtype == np.uint8 and image.shape == (BINS_PER_OCTAVE * OCTAVES, 1 + 64000 // 256, 3)


def test_brightest_row_is_the_tone_with_low_notes_at_the_bottom():
    for frequency in (110.0, 880.0):
        image = rainbowgram(tone(frequency)).astype(float)
        brightest_row = image[:, 10:-10].max(axis=-1).mean(axis=1).argmax()
        expected_bin = round((librosa.hz_to_midi(frequency) - librosa.note_to_midi("C2")) * BINS_PER_OCTAVE / 12)
        assert abs((image.shape[0] - 1 - brightest_row) - expected_bin) <= 2


def test_steady_tone_has_steady_instantaneous_frequency():
    brightness, instantaneous_frequency = log_power_and_if(constant_q(tone(440.0)))
    row = brightness[:, 10:-10].mean(1).argmax()
    steps = instantaneous_frequency[row, 10:-10]
    assert steps.std() < 0.05  # a pure tone advances its phase by the same amount every hop
    noise = np.random.default_rng(0).normal(scale=0.3, size=SAMPLE_RATE).astype(np.float32)
    _, noise_if = log_power_and_if(constant_q(noise))
    assert noise_if[row, 10:-10].std() > 5 * steps.std()


def test_silence_is_black_and_short_audio_works():
    assert rainbowgram(np.zeros(16000, np.float32)).max() == 0
    short = rainbowgram(tone(440.0, 0.1))
    assert short.shape == (240, 1 + 1600 // 256, 3) and short.max() > 0


def test_the_reconstruct_tab_figure_has_time_and_pitch_axes():
    figure = rainbowgram_figure(tone(440.0, 1.0), "DDSP")
    image = figure.layout.images[0]
    assert image.sizex == pytest.approx(1.0, abs=HOP_LENGTH / SAMPLE_RATE)  # the picture spans the sound's time
    assert figure.layout.xaxis.title.text == "time (s)" and tuple(figure.layout.xaxis.range) == (0, 1.0)
    assert list(figure.layout.yaxis.ticktext) == ["C2", "C3", "C4", "C5", "C6", "C7", "C8"]
    assert figure.layout.yaxis.visible and "DDSP" in figure.layout.title.text
    assert "colour" in figure.layout.title.text  # what colour and brightness mean is written beside it
