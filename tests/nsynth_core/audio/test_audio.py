import io
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nsynth_core.audio import core as audio
from nsynth_core.audio.core import (MAX_PLAYBACK_GAIN, NOTE_LENGTH, NOTE_PEAK, PLAYBACK_PEAK, SAMPLE_RATE, AudioError,
                               for_playback, load_audio, mu_law_decode, mu_law_encode, normalize_loudness, write_wav)


def sine(frequency, seconds, sample_rate, amplitude=0.5):
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return amplitude * np.sin(2 * np.pi * frequency * t)


def dominant_frequency(x, sample_rate=SAMPLE_RATE):
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spectrum) * sample_rate / len(x)


def file_bytes(samples, sample_rate=SAMPLE_RATE, subtype="PCM_16", format="WAV"):
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format=format, subtype=subtype)
    return buffer.getvalue()


# --- mu-law ---

def test_mu_law_codes_span_the_8_bit_range_monotonically():
    x = np.linspace(-1.5, 1.5, 30001)
    q = mu_law_encode(x)
    assert np.issubdtype(q.dtype, np.integer)
    assert q.min() == -128 and q.max() == 127
    assert np.all(np.diff(q) >= 0)
    assert set(np.unique(q)) == set(range(-128, 128))
    # floor(128 * ln(1 + 255 * 0.5) / ln(256)) = floor(112.09)
    assert mu_law_encode(np.array([0.0, 0.5, -0.5]))[1:].tolist() == [112, -113]
    assert mu_law_encode(np.array([0.0]))[0] == 0


def test_mu_law_round_trip_error_is_within_half_a_companded_bin():
    x = np.random.default_rng(0).uniform(-1, 1, 100_000)
    x = np.concatenate([x, [-1.0, 0.0, 1.0, 1e-6, -1e-6]])
    error = np.abs(mu_law_decode(mu_law_encode(x)) - x)
    # A companded bin of width 1/128 spans (|x| + 1/255) * (256**(1/128) - 1) in x; half of that is ~0.022.
    # Code 0 decodes to exact silence, so its bin (up to 1.7e-4) adds a small absolute term.
    assert np.all(error <= 0.0219 * np.abs(x) + 2e-4)
    assert error.max() < 0.022


def test_mu_law_decode_gives_bin_midpoints_that_encode_back():
    q = np.arange(-128, 128)
    x = mu_law_decode(q)
    assert x.dtype == np.float32
    assert np.all(np.diff(x) > 0) and np.all(np.abs(x) <= 1)
    assert x[q == 0][0] == 0.0
    np.testing.assert_array_equal(mu_law_encode(x), q)
    companded = np.sign(x) * np.log1p(255 * np.abs(x)) / np.log(256) * 128
    nonzero = q != 0
    np.testing.assert_allclose(companded[nonzero], q[nonzero] + 0.5, atol=1e-3)


def test_mu_law_keeps_torch_as_torch_and_matches_numpy():
    x = np.random.default_rng(1).uniform(-1, 1, 5000).astype(np.float32)
    q_torch = mu_law_encode(torch.from_numpy(x))
    assert isinstance(q_torch, torch.Tensor) and q_torch.dtype == torch.long
    np.testing.assert_array_equal(q_torch.numpy(), mu_law_encode(x))
    decoded = mu_law_decode(q_torch)
    assert isinstance(decoded, torch.Tensor) and decoded.dtype == torch.float32
    np.testing.assert_allclose(decoded.numpy(), mu_law_decode(q_torch.numpy()), rtol=1e-6, atol=1e-7)


# --- loading: formats, rates, channels ---

@pytest.mark.parametrize("format, subtype, suffix, sample_rate", [
    ("WAV", "PCM_U8", ".wav", 44100),
    ("WAV", "PCM_16", ".wav", 44100),
    ("WAV", "PCM_24", ".wav", 44100),
    ("WAV", "PCM_32", ".wav", 44100),
    ("WAV", "FLOAT", ".wav", 44100),
    ("WAV", "DOUBLE", ".wav", 44100),
    ("FLAC", "PCM_16", ".flac", 44100),
    ("FLAC", "PCM_24", ".flac", 44100),
    ("OGG", "VORBIS", ".ogg", 44100),
    ("OGG", "OPUS", ".opus", 48000),
    ("MP3", "MPEG_LAYER_III", ".mp3", 44100),
])
def test_loads_every_common_format(write_tone, format, subtype, suffix, sample_rate):
    path = write_tone(format=format, subtype=subtype, suffix=suffix, sample_rate=sample_rate)
    x = load_audio(path, length=8000)
    assert x.dtype == np.float32 and x.shape == (8000,)
    assert np.all(np.isfinite(x))
    assert np.max(np.abs(x)) == pytest.approx(NOTE_PEAK, rel=1e-5)
    assert dominant_frequency(x) == pytest.approx(440, abs=2)


@pytest.mark.parametrize("sample_rate", [8000, 22050, 44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_any_rate_and_channel_count_becomes_16k_mono_at_the_same_pitch(write_tone, sample_rate, channels):
    path = write_tone(sample_rate=sample_rate, channels=channels, seconds=0.5)
    natural = load_audio(path, length=None)
    assert natural.ndim == 1 and abs(natural.size - SAMPLE_RATE // 2) <= 1
    assert dominant_frequency(natural) == pytest.approx(440, abs=2)
    note = load_audio(path)
    assert note.shape == (NOTE_LENGTH,)
    np.testing.assert_allclose(note[:7000], natural[:7000], atol=1e-6)


def test_channels_are_averaged(tmp_path):
    left = sine(440, 0.25, 16000, amplitude=0.5)
    path = tmp_path / "left_only.wav"
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), 16000, subtype="FLOAT")
    x = load_audio(path, length=None, peak=None)
    np.testing.assert_allclose(x, left / 2, atol=1e-7)


def test_resampling_filters_content_above_the_new_nyquist(tmp_path):
    # At 16 kHz a 10 kHz tone would alias to 6 kHz; a proper resampler removes it instead.
    mix = sine(440, 0.5, 44100, 0.4) + sine(10_000, 0.5, 44100, 0.4)
    path = tmp_path / "mix.wav"
    sf.write(path, mix, 44100, subtype="FLOAT")
    spectrum = np.abs(np.fft.rfft(load_audio(path, length=8000) * np.hanning(8000)))
    alias_bin, tone_bin = 6000 * 8000 // SAMPLE_RATE, 440 * 8000 // SAMPLE_RATE
    assert spectrum[alias_bin - 5:alias_bin + 5].max() < 1e-3 * spectrum[tone_bin]


def test_trims_long_and_zero_pads_short_audio(write_tone):
    long_path = write_tone(seconds=5.0, sample_rate=44100)
    long = load_audio(long_path, peak=None)
    assert long.shape == (NOTE_LENGTH,)
    # Reading only the needed part of the file must not change the samples that are kept.
    whole = load_audio(long_path, length=None, peak=None)
    np.testing.assert_allclose(long, whole[:NOTE_LENGTH], atol=1e-6)
    short = load_audio(write_tone(seconds=1.0, sample_rate=22050))
    assert short.shape == (NOTE_LENGTH,)
    assert np.abs(short[:15000]).max() == pytest.approx(NOTE_PEAK, rel=1e-5)
    assert np.all(short[16100:] == 0)


def test_natural_length_is_capped_at_max_upload_seconds(write_tone, monkeypatch):
    monkeypatch.setattr(audio, "MAX_UPLOAD_SECONDS", 0.25)
    x = load_audio(write_tone(seconds=2.0, sample_rate=48000), length=None)
    assert abs(x.size - 4000) <= 1


@pytest.mark.parametrize("format", ["WAV", "FLAC"])
def test_reads_only_the_beginning_of_a_long_file(format):
    class CountingBytesIO(io.BytesIO):
        furthest = 0

        def readinto(self, buffer):
            count = super().readinto(buffer)
            self.furthest = max(self.furthest, self.tell())
            return count

        def read(self, size=-1):
            data = super().read(size)
            self.furthest = max(self.furthest, self.tell())
            return data

    buffer = io.BytesIO()
    sf.write(buffer, sine(440, 30.0, 44100), 44100, format=format, subtype="PCM_16")
    source = CountingBytesIO(buffer.getvalue())
    x = load_audio(source, length=16000)
    assert x.shape == (16000,)
    assert source.furthest < 0.1 * len(buffer.getvalue())


def test_paths_bytes_and_file_objects_load_the_same(write_tone):
    path = write_tone()
    from_path = load_audio(path, length=4000)
    data = path.read_bytes()
    for source in (str(path), data, bytearray(data), io.BytesIO(data)):
        np.testing.assert_array_equal(load_audio(source, length=4000), from_path)
    with open(path, "rb") as file:
        np.testing.assert_array_equal(load_audio(file, length=4000), from_path)


# --- loudness ---

def test_normalize_loudness_sets_the_peak():
    x = np.random.default_rng(2).normal(0, 3, 1000)
    y = normalize_loudness(x, peak=0.5)
    assert y.dtype == np.float32 and np.max(np.abs(y)) == pytest.approx(0.5, rel=1e-6)
    np.testing.assert_allclose(y, x * 0.5 / np.max(np.abs(x)), rtol=1e-5)


def test_playback_brings_notes_to_one_peak_but_keeps_near_silence_quiet():
    note = NOTE_PEAK * np.sin(np.linspace(0, 100, 1000))
    for x in (note, note / 3, np.clip(note * 20, -1, 1)):
        assert np.abs(for_playback(x)).max() == pytest.approx(PLAYBACK_PEAK, rel=1e-6)
    idle = np.full(1000, 2.6e-4) * np.sign(np.sin(np.arange(1000)))  # a decoder between the smallest mu-law steps
    np.testing.assert_allclose(for_playback(idle), idle * MAX_PLAYBACK_GAIN, rtol=1e-6)
    assert np.abs(for_playback(idle)).max() < 0.01
    assert not for_playback(np.zeros(10)).any()


def test_silence_stays_silence(tmp_path):
    with np.errstate(all="raise"):
        assert np.all(normalize_loudness(np.zeros(100), 0.9) == 0)
        quiet = np.full(100, 1e-6)
        np.testing.assert_array_equal(normalize_loudness(quiet, 0.9), quiet.astype(np.float32))
        assert normalize_loudness(np.zeros(0), 0.9).size == 0
        path = tmp_path / "silence.wav"
        sf.write(path, np.zeros(8000), 16000)
        x = load_audio(path)
    assert x.shape == (NOTE_LENGTH,) and np.all(x == 0)


@pytest.mark.parametrize("subtype, amplitude", [("FLOAT", 1e30), ("DOUBLE", 1e300)])
def test_huge_amplitudes_are_normalised_or_clipped(tmp_path, subtype, amplitude):
    path = tmp_path / "loud.wav"
    sf.write(path, sine(440, 0.5, 16000, amplitude), 16000, subtype=subtype)
    x = load_audio(path, length=8000)
    assert np.all(np.isfinite(x)) and np.max(np.abs(x)) == pytest.approx(NOTE_PEAK, rel=1e-5)
    assert dominant_frequency(x) == pytest.approx(440, abs=2)
    raw = load_audio(path, length=8000, peak=None)
    assert np.all(np.isfinite(raw)) and np.max(np.abs(raw)) == 1.0


# --- bad input: a clear AudioError, never a traceback from deeper down ---

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_rejected(tmp_path, bad):
    samples = sine(440, 0.1, 16000)
    samples[100] = bad
    path = tmp_path / "corrupt.wav"
    sf.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="(NaN|infinite).*corrupt.wav"):
        load_audio(path)


def test_text_renamed_to_wav_is_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my notes, not a recording\n" * 20)
    with pytest.raises(AudioError, match="notes.wav") as caught:
        load_audio(path)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(AudioError, match="uploaded audio"):
        load_audio(path.read_bytes())


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match="empty.wav.*empty"):
        load_audio(empty)
    with pytest.raises(AudioError, match="empty"):
        load_audio(b"")
    with pytest.raises(AudioError, match="missing.wav.*does not exist"):
        load_audio(tmp_path / "missing.wav")


def test_truncated_wav(tmp_path):
    data = file_bytes(sine(440, 0.1, 16000))
    path = tmp_path / "cut.wav"
    path.write_bytes(data[:20])  # inside the fmt chunk
    with pytest.raises(AudioError, match="cut.wav"):
        load_audio(path)
    path.write_bytes(data[:44])  # a complete header and no samples
    with pytest.raises(AudioError, match="no audio samples.*cut.wav"):
        load_audio(path)


def test_implausible_sample_rate_is_rejected():
    with pytest.raises(AudioError, match="1000 Hz"):
        load_audio(file_bytes(np.zeros(100), sample_rate=1000))


def test_wrong_source_type_is_a_type_error():
    with pytest.raises(TypeError):
        load_audio(12345)


# --- writing ---

def test_write_wav_writes_clipped_16_bit_pcm(tmp_path):
    path = tmp_path / "out.wav"
    write_wav(path, np.array([-2.0, -0.5, 0.0, 0.5, 2.0]))
    info = sf.info(path)
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "PCM_16", SAMPLE_RATE, 1)
    samples, _ = sf.read(path, dtype="int16")
    assert samples.tolist() == [-32768, -16384, 0, 16384, 32767]


def test_written_wav_loads_back(tmp_path):
    tone = sine(440, 0.5, SAMPLE_RATE, amplitude=0.8).astype(np.float32)
    path = tmp_path / "tone.wav"
    write_wav(path, tone)
    np.testing.assert_allclose(load_audio(path, length=None, peak=None), tone, atol=1 / 32768)


def test_huge_float_samples_at_another_rate_load_finite(tmp_path):
    path = tmp_path / "huge.wav"
    sf.write(path, np.full(800, 4.25e36, dtype=np.float32), 8000, subtype="FLOAT")
    normalized, clipped = load_audio(path, length=1600), load_audio(path, length=1600, peak=None)
    assert np.all(np.isfinite(normalized)) and np.all(np.isfinite(clipped))
    assert np.abs(normalized).max() > 0 and clipped[800] == 1.0


# --- fuzzing: a finite float32 array of the requested length, or an AudioError ---

def assert_loads_cleanly_or_rejects(data, length):
    try:
        x = load_audio(data, length=length)
    except AudioError:
        return False
    assert x.dtype == np.float32 and x.shape == (length,)
    assert np.all(np.isfinite(x)) and np.all(np.abs(x) <= 1)
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    samples=st.integers(0, 600).flatmap(lambda frames: st.integers(1, 3).flatmap(
        lambda channels: arrays(np.float32, (frames, channels),
                                elements=st.floats(width=32, allow_nan=True, allow_infinity=True))
    )),
    sample_rate=st.sampled_from([8000, 16000, 22050, 44100, 96000]),
    subtype=st.sampled_from(["FLOAT", "PCM_16"]),
    length=st.integers(1, 1000),
)
def test_fuzz_random_sample_arrays(samples, sample_rate, subtype, length):
    loaded = assert_loads_cleanly_or_rejects(file_bytes(samples, sample_rate, subtype), length)
    if samples.shape[0] == 0:
        assert not loaded
    # Non-finite samples past the part that is read may go unnoticed; anything else finite must load.
    elif subtype == "PCM_16" or np.all(np.isfinite(samples)):
        assert loaded


VALID_WAV = file_bytes(sine(440, 0.05, 16000))
VALID_FLAC = file_bytes(sine(440, 0.05, 16000), format="FLAC")


@settings(max_examples=150, deadline=None)
@given(
    original=st.sampled_from([VALID_WAV, VALID_FLAC]),
    edits=st.lists(st.tuples(st.integers(0, 63), st.integers(0, 255)), max_size=8),
    keep=st.integers(0, len(VALID_WAV)),
    length=st.integers(1, 1000),
)
def test_fuzz_corrupted_headers(original, edits, keep, length):
    data = bytearray(original[:keep])
    for position, value in edits:
        if position < len(data):
            data[position] = value
    assert_loads_cleanly_or_rejects(bytes(data), length)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200), length=st.integers(1, 1000))
def test_fuzz_random_bytes_after_a_riff_header(data, length):
    assert_loads_cleanly_or_rejects(b"RIFF" + len(data).to_bytes(4, "little") + b"WAVEfmt " + data, length)
