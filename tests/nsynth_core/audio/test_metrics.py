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
    assert abs(metrics.cents_error(quick, librosa.hz_to_midi(full))) < 10.001  # within half of its bin


@pytest.mark.parametrize("midi_pitch", [21, 28, 45, 96, 108])
def test_the_quick_pitch_search_finds_what_the_full_one_finds_at_the_ends_of_the_range(midi_pitch):
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    rich = sum(np.sin(2 * np.pi * k * librosa.midi_to_hz(midi_pitch) * t) / k for k in range(1, 6)
               if k * librosa.midi_to_hz(midi_pitch) < SAMPLE_RATE / 2).astype(np.float32)  # a sawtooth-like tone
    full = librosa.hz_to_midi(metrics.median_f0(rich))
    assert abs(metrics.cents_error(metrics.quick_median_f0(rich), full)) < 10.001
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


def tone(midi_pitch, seconds=4.0, vibrato_cents=0.0, rate=5.0, partials=(1.0, 0.5, 0.25), decay=0.0, noise=0.0,
         seed=0):
    """A harmonic tone with an optional sinusoidal vibrato of `vibrato_cents` (peak), exponential decay and noise."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = librosa.midi_to_hz(midi_pitch) * 2 ** (vibrato_cents * np.sin(2 * np.pi * rate * t) / 1200)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    audio = sum(a * np.sin((k + 1) * phase) for k, a in enumerate(partials)) * np.exp(-decay * t)
    audio = audio + noise * np.random.default_rng(seed).standard_normal(len(t))
    return (0.2 * audio / np.abs(audio).max()).astype(np.float32)


@pytest.mark.parametrize("midi_pitch", [45, 69, 88])
def test_f0_spread_measures_a_vibrato_at_its_depth_and_a_steady_tone_as_steady(midi_pitch):
    depth = 20.0  # peak cents: a sine's standard deviation is depth / sqrt 2
    assert metrics.f0_spread(tone(midi_pitch), midi_pitch) < 1.5
    spread = metrics.f0_spread(tone(midi_pitch, vibrato_cents=depth), midi_pitch)
    assert abs(spread / (depth / math.sqrt(2)) - 1) < 0.2, spread
    cents, voiced = metrics.f0_contour(tone(midi_pitch, vibrato_cents=depth), midi_pitch)
    assert voiced[10:-10].all() and np.abs(cents[voiced]).max() < 1.3 * depth


def test_f0_spread_of_silence_is_nan():
    assert math.isnan(metrics.f0_spread(np.zeros(64000, dtype=np.float32), 60))


def test_sounding_stft_distance_ignores_level_and_the_silence_after_the_note():
    note = tone(60, decay=1.0)
    assert metrics.sounding_stft_distance(note, note) == 0.0
    assert metrics.sounding_stft_distance(note, 0.1 * note) < 0.03  # level-matched (float32 rounding in empty bins)
    # Noise far below the sounding part (a tail the original does not have) hardly counts; noise within it does.
    quiet_tail = note.copy()
    quiet_tail[48000:] += 1e-7 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    loud = note + 0.01 * np.random.default_rng(1).standard_normal(len(note)).astype(np.float32)
    assert metrics.sounding_stft_distance(note, quiet_tail) < 0.1 * metrics.sounding_stft_distance(note, loud)
    assert metrics.sounding_stft_distance(note, tone(60, decay=1.0, partials=(1.0, 0.0, 1.0))) > \
        metrics.sounding_stft_distance(note, tone(60, decay=1.0, partials=(1.0, 0.45, 0.3)))


def test_each_note_retrieves_itself_and_a_close_copy_retrieves_its_instrument():
    # Three "instruments" (spectra and envelopes), each at two pitches.
    instruments = [0, 0, 1, 1, 2, 2]
    kinds = [dict(partials=(1.0, 0.1, 0.05), decay=0.3), dict(partials=(1.0, 0.9, 0.8, 0.7), decay=3.0),
             dict(partials=(1.0, 0.3), noise=0.3)]
    notes = [tone(pitch, **kinds[instrument]) for instrument, pitch in zip(instruments, [50, 55] * 3)]
    originals = np.stack([metrics.timbre_descriptor(note) for note in notes])
    assert metrics.retrieval_hits(originals, originals, instruments).all()  # each is its own nearest
    assert metrics.retrieval_hits(originals, originals, instruments, leave_one_out=True).all()
    copies = np.stack([metrics.timbre_descriptor(0.3 * tone(pitch, seed=7, **kinds[instrument]))
                       for instrument, pitch in zip(instruments, [50, 55] * 3)])
    assert metrics.retrieval_hits(copies, originals, instruments).all()
    swapped = np.stack([metrics.timbre_descriptor(tone(pitch, **kinds[(instrument + 1) % 3]))
                        for instrument, pitch in zip(instruments, [50, 55] * 3)])
    assert not metrics.retrieval_hits(swapped, originals, instruments).any()
    assert metrics.retrieval_chance(instruments) == pytest.approx(2 / 6)
    assert metrics.retrieval_chance(instruments, leave_one_out=True) == pytest.approx(1 / 5)
