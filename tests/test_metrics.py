import math

import librosa
import numpy as np
import pytest

from nsynth_core.audio import metrics
from nsynth_core.explorer.notes import bundled_notes

SAMPLE_RATE = 16000


def sine(midi_pitch, seconds=1.5):
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * 440.0 * 2 ** ((midi_pitch - 69) / 12) * t)).astype(np.float32)


def test_distance_is_zero_for_identical_signals_and_grows_with_noise():
    rng = np.random.default_rng(0)
    clean = sine(60, seconds=1.0)
    noise = rng.standard_normal(len(clean)).astype(np.float32)
    distances = [metrics.multiscale_stft_distance(clean, clean + level * noise) for level in (0.0, 0.01, 0.1, 1.0)]
    assert distances[0] == 0.0
    assert distances[1] < distances[2] < distances[3]


def test_distance_rejects_mismatched_signals():
    with pytest.raises(metrics.MetricsError, match="same shape"):
        metrics.multiscale_stft_distance(np.zeros(4096), np.zeros(8192))


@pytest.mark.parametrize("midi_pitch", [33, 60, 84])
def test_median_f0_of_a_sine_is_within_10_cents(midi_pitch):
    f0 = metrics.median_f0(sine(midi_pitch), SAMPLE_RATE)
    assert abs(metrics.cents_error(f0, midi_pitch)) <= 10


def test_median_f0_of_silence_is_nan():
    assert math.isnan(metrics.median_f0(np.zeros(SAMPLE_RATE * 2, dtype=np.float32)))


def rendered_notes():
    """Every third bundled example: NSynth notes rendered from SoundFonts, each family and pitches 36-81."""
    return bundled_notes()[::3]


@pytest.mark.parametrize("note", rendered_notes(), ids=lambda note: note.name)
def test_the_quick_pitch_search_finds_what_the_full_one_finds_in_rendered_notes(note):
    full, quick = metrics.median_f0(note.audio), metrics.quick_median_f0(note.audio)
    assert quick == pytest.approx(full, rel=1e-9)  # the same bin


@pytest.mark.parametrize("midi_pitch", [21, 28, 45, 96, 108])
def test_the_quick_pitch_search_finds_what_the_full_one_finds_at_the_ends_of_the_range(midi_pitch):
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    rich = sum(np.sin(2 * np.pi * k * librosa.midi_to_hz(midi_pitch) * t) / k for k in range(1, 6)
               if k * librosa.midi_to_hz(midi_pitch) < SAMPLE_RATE / 2).astype(np.float32)  # a sawtooth-like tone
    assert metrics.quick_median_f0(rich) == pytest.approx(metrics.median_f0(rich), rel=1e-9)
    assert math.isnan(metrics.quick_median_f0(np.zeros(SAMPLE_RATE * 2, dtype=np.float32)))


def test_cents_error_measures_octaves_and_semitones():
    assert metrics.cents_error(880.0, 69) == pytest.approx(1200.0)
    assert metrics.cents_error(440.0, 70) == pytest.approx(-100.0)


def test_pitch_kept_rejects_an_octave_error():
    note = sine(57)
    assert metrics.pitch_kept(note, 57)
    assert not metrics.pitch_kept(note, 69)
    assert not metrics.pitch_kept(np.zeros_like(note), 57)


def test_median_f0_rejects_too_short_audio():
    with pytest.raises(metrics.MetricsError, match="too short"):
        metrics.median_f0(np.zeros(100, dtype=np.float32))
