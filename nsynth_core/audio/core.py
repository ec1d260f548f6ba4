"""Audio in and out: any common file as a 16 kHz mono note, 8-bit mu-law, peak loudness, 16-bit wav."""
import io
import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

SAMPLE_RATE = 16000
NOTE_LENGTH = 64000  # 4 s at 16 kHz, the length of an NSynth note
MAX_UPLOAD_SECONDS = 60.0  # with length=None, longer files are cut here so a long upload never loads whole
SOURCE_RATE_RANGE = (4000, 192000)  # rates outside this are almost surely a corrupt header
# A model knows only the loudness it was trained on: at peak 0.9 the WaveNet of 14 442 steps kept the pitch of 27 of
# 40 test notes, at their own level 37. So notes are given to models at the training notes' typical level, the
# median peak of 1 500 of them (velocities 25-127; 5-95 % of peaks lie in 0.04-0.64), and scaled up only to be
# listened to.
NOTE_PEAK = 0.17
PLAYBACK_PEAK = 0.9  # headroom below 1 so a played note does not clip
# Near-silent output (a decoder idling between the smallest mu-law steps) is played quiet, not boosted to a crackle.
MAX_PLAYBACK_GAIN = 4 * PLAYBACK_PEAK / NOTE_PEAK
SILENCE_PEAK = 1e-4  # -80 dBFS: quieter than this is silence, and scaling it up would only amplify noise
MU = 255

_READ_FRAMES = 1 << 20  # samples (frames x channels) per read, bounding memory for many-channel files


class AudioError(ValueError):
    """An input that cannot be used as audio; the message is a sentence meant for the person who gave it."""


def load_audio(source, sample_rate=SAMPLE_RATE, length=NOTE_LENGTH, peak=NOTE_PEAK):
    """Read a file (path, bytes or file-like) as mono float32 at `sample_rate`.

    Channels are averaged, the rate is converted with soxr, and the result is cut or zero-padded to `length`
    samples (None keeps the natural length, up to MAX_UPLOAD_SECONDS). Only as much of the file as that needs
    is read. The peak is set to `peak` (the level models are fed at); with peak=None the level is kept and
    samples beyond [-1, 1] (possible in float files) are clipped, so the result is always finite and within [-1, 1].
    """
    what, source = _open(source)
    try:
        with sf.SoundFile(source) as file:
            source_rate = file.samplerate
            low, high = SOURCE_RATE_RANGE
            if not low <= source_rate <= high:
                raise AudioError(f"The sample rate of {what} is {source_rate} Hz; "
                                 f"supported rates are {low} to {high} Hz.")
            if length is None:
                max_frames = int(MAX_UPLOAD_SECONDS * source_rate)
            else:
                # A few extra milliseconds keep the resampler's end-of-signal ramp outside the kept samples.
                max_frames = math.ceil(length * source_rate / sample_rate) + source_rate // 100
            audio = _read_mono(file, max_frames, what)
    except sf.SoundFileError as error:
        reason = getattr(error, "error_string", str(error)).strip().rstrip(".")
        raise AudioError(f"Could not decode {what} ({reason}). "
                         "Supported files include WAV, FLAC, OGG and MP3.") from None

    if audio.size == 0:
        raise AudioError(f"There are no audio samples in {what}.")
    if source_rate != sample_rate:
        # soxr overflows on huge float samples (about 1e36 gave inf and nan), so it resamples unit-peak audio.
        scale = max(np.max(np.abs(audio)), 1.0)
        audio = soxr.resample(audio / scale, source_rate, sample_rate) * scale
    if length is not None:
        kept = audio[:length]
        audio = np.zeros(length)
        audio[:kept.size] = kept
    if peak is not None:
        return normalize_loudness(audio, peak)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _open(source):
    """(how messages name the source, something soundfile can open); paths are checked for existence and size."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioError("The uploaded audio is empty (0 bytes).")
        return "the uploaded audio", io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise AudioError(f"Audio file '{path.name}' does not exist.")
        if path.stat().st_size == 0:
            raise AudioError(f"Audio file '{path.name}' is empty (0 bytes).")
        return f"'{path.name}'", str(path)
    if hasattr(source, "read"):
        name = getattr(source, "name", None)
        return (f"'{Path(str(name)).name}'" if name else "the uploaded audio"), source
    raise TypeError(f"load_audio expects a path, bytes or a file object, not {type(source).__name__}.")


def _read_mono(file, max_frames, what):
    """Read up to max_frames as float64 mono, chunk by chunk, rejecting non-finite samples."""
    chunk_frames = max(1024, _READ_FRAMES // file.channels)
    chunks = []
    remaining = max_frames
    while remaining > 0:
        # float64 keeps huge float samples finite (a float32 read would turn 1e300 into inf).
        chunk = file.read(min(chunk_frames, remaining), dtype="float64", always_2d=True)
        if len(chunk) == 0:
            break
        # NaN/Inf samples mean a corrupt file; rejecting says so, where silently zeroing them would hide it.
        if not np.isfinite(chunk).all():
            raise AudioError(f"Found NaN or infinite samples in {what}; the file is probably corrupt.")
        chunks.append(chunk.mean(axis=1))
        remaining -= len(chunk)
    return np.concatenate(chunks) if chunks else np.zeros(0)


def normalize_loudness(x, peak, max_gain=math.inf):
    """Scale x so its largest absolute sample is `peak`, by a gain of at most `max_gain`; silence (below
    SILENCE_PEAK) is returned unchanged."""
    x = np.asarray(x, dtype=np.float64)  # float64: the peak of huge float32 samples must not overflow
    current = np.max(np.abs(x), initial=0.0)
    if current < SILENCE_PEAK:
        return x.astype(np.float32)
    return (x * min(peak / current, max_gain)).astype(np.float32)


def for_playback(x):
    """x at the level every player plays at: its peak at most PLAYBACK_PEAK. Non-finite samples are refused:
    turned into 16-bit they would play as full-scale noise."""
    if not np.isfinite(x).all():
        raise AudioError("The decoded audio has NaN or infinite samples, so it is not played; "
                         "the model's weights are probably corrupt.")
    return normalize_loudness(x, PLAYBACK_PEAK, MAX_PLAYBACK_GAIN)


def playback_pcm16(x) -> np.ndarray:
    """x at the playback level as 16-bit integers, what players and sample files hold."""
    return np.round(for_playback(x) * 32767).astype(np.int16)


def midi_to_hz(pitch: torch.Tensor) -> torch.Tensor:
    """Equal-tempered frequency (float64, Hz) of MIDI pitches, A4 = 69 = 440 Hz."""
    return 440.0 * 2.0 ** ((pitch.double() - 69.0) / 12.0)


def mu_law_encode(x):
    """Audio in [-1, 1] -> integer codes in [-128, 127] (Magenta's 8-bit mu-law); numpy or torch in and out."""
    if isinstance(x, torch.Tensor):
        x = x.float()
        companded = torch.sign(x) * torch.log1p(MU * x.abs()) / math.log1p(MU)
        return torch.floor(companded * 128).clamp(-128, 127).long()
    x = np.asarray(x, dtype=np.float32)
    companded = np.sign(x) * np.log1p(MU * np.abs(x)) / np.float32(math.log1p(MU))
    return np.clip(np.floor(companded * 128), -128, 127).astype(np.int64)


def mu_law_decode(q):
    """Integer codes -> audio in [-1, 1]: each code maps to the middle of its companded bin, code 0 to silence."""
    if isinstance(q, torch.Tensor):
        companded = (q.float() + 0.5) / 128
        x = torch.sign(companded) * torch.expm1(companded.abs() * math.log1p(MU)) / MU
        return torch.where(q == 0, torch.zeros_like(x), x)
    q = np.asarray(q)
    companded = (q.astype(np.float32) + 0.5) / 128
    x = np.sign(companded) * np.expm1(np.abs(companded) * np.float32(math.log1p(MU))) / MU
    return np.where(q == 0, np.float32(0), x).astype(np.float32)


def write_wav(path, audio, sample_rate=SAMPLE_RATE):
    """Write mono audio as 16-bit PCM wav, clipping to [-1, 1] so overs saturate instead of wrapping around."""
    audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    sf.write(path, audio, sample_rate, format="WAV", subtype="PCM_16")
