"""How close a reconstruction is to its original: spectral distance and pitch."""

import librosa
import numpy as np
import scipy.ndimage

# NSynth spans MIDI 21-108; pYIN searches a little beyond so notes at the ends are not clipped.
LOWEST_F0_HZ = librosa.midi_to_hz(20)
HIGHEST_F0_HZ = librosa.midi_to_hz(109)
# Analyse 1 s of the held part of a note: after the attack's transient, well before the release at 3 s.
PITCH_WINDOW_S = (0.25, 1.25)
# 256 ms at 16 kHz; 128 ms frames read a MIDI-21 sine 20 cents sharp, these within 10 cents.
PITCH_FRAME_LENGTH = 4096
PITCH_HOP_LENGTH = 512
# pYIN's cost is its pitch tracker's (Viterbi over 2 states per pitch bin, squared, holding Python's interpreter
# lock). quick_median_f0 looks for a note's MIDI pitch in two cheaper passes: the first on 1-semitone bins over the
# whole range, the second 1.5 octaves either side of what it found on 0.2-semitone bins (pYIN's transition window
# needs about 14 semitones at those bins where the range is cut at its ends). On every 8th rendered NSynth test
# note (636) it finds the label's pitch on 630, where median_f0's one search on 0.1-semitone bins does on 626, and
# in a third of the time passes on 0.25- and 0.1-semitone bins took; 1 octave either side missed more (a jump of an
# octave inside the narrower range), 0.5-semitone bins in the second pass too.
COARSE_RESOLUTION = 1.0
FINE_RESOLUTION = 0.2
FINE_SEARCH_SEMITONES = 18
EPSILON = 1e-7


class MetricsError(ValueError):
    """Audio a metric cannot be computed on."""


def multiscale_stft_distance(a, b, fft_sizes=(2048, 1024, 512, 256, 128, 64)):
    """Spectral convergence plus log-magnitude L1, averaged over STFT sizes; 0 when b equals a.

    a is the reference: spectral convergence is measured relative to its energy.
    """
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    if a.shape != b.shape:
        raise MetricsError(f"Both signals need the same shape to be compared, got {a.shape} and {b.shape}.")
    if a.shape[-1] < max(fft_sizes):
        raise MetricsError(f"Signals of {a.shape[-1]} samples are shorter than the largest FFT ({max(fft_sizes)}).")
    distances = []
    for n_fft in fft_sizes:
        magnitude_a = np.abs(librosa.stft(a, n_fft=n_fft, hop_length=n_fft // 4))
        magnitude_b = np.abs(librosa.stft(b, n_fft=n_fft, hop_length=n_fft // 4))
        convergence = np.linalg.norm(magnitude_a - magnitude_b) / (np.linalg.norm(magnitude_a) + EPSILON)
        log_l1 = np.mean(np.abs(np.log(magnitude_a + EPSILON) - np.log(magnitude_b + EPSILON)))
        distances.append(convergence + log_l1)
    return float(np.mean(distances))


def median_f0(audio, sample_rate=16000, fmin=LOWEST_F0_HZ, fmax=HIGHEST_F0_HZ, resolution=0.1):
    """Median pYIN f0 in Hz over the voiced frames of a note's held part, searched within [fmin, fmax] on bins of
    `resolution` semitones; nan when none is voiced."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise MetricsError(f"Expected one mono note (a 1-D array), got shape {audio.shape}.")
    start, end = (int(t * sample_rate) for t in PITCH_WINDOW_S)
    segment = audio[start:end] if len(audio) >= end else audio
    if len(segment) < PITCH_FRAME_LENGTH:
        raise MetricsError(
            f"{len(audio)} samples are too short to track pitch; need at least {PITCH_FRAME_LENGTH}."
        )
    if not np.any(segment):
        return float("nan")
    f0, voiced, _ = librosa.pyin(
        segment,
        fmin=fmin,
        fmax=fmax,
        sr=sample_rate,
        frame_length=PITCH_FRAME_LENGTH,
        hop_length=PITCH_HOP_LENGTH,
        resolution=resolution,
    )
    voiced_f0 = f0[voiced & np.isfinite(f0)]
    return float(np.median(voiced_f0)) if len(voiced_f0) else float("nan")


def quick_median_f0(audio, sample_rate=16000):
    """median_f0 in two cheaper passes, to find a note's MIDI pitch: a coarse one over the whole range, then a
    finer one around it (its f0 lies on 0.2-semitone bins, not median_f0's 0.1)."""
    coarse = median_f0(audio, sample_rate, resolution=COARSE_RESOLUTION)
    if np.isnan(coarse):
        return coarse
    centre = librosa.hz_to_midi(coarse)
    lowest, highest = librosa.hz_to_midi([LOWEST_F0_HZ, HIGHEST_F0_HZ])
    low = max(lowest, np.floor(centre - FINE_SEARCH_SEMITONES))
    high = min(highest, np.ceil(centre + FINE_SEARCH_SEMITONES))
    return median_f0(audio, sample_rate, librosa.midi_to_hz(low), librosa.midi_to_hz(high), FINE_RESOLUTION)


def cents_error(f0, midi_pitch):
    """Signed distance in cents from f0 (Hz) to the equal-tempered MIDI pitch; nan in, nan out."""
    return 1200.0 * np.log2(np.asarray(f0, dtype=np.float64) / librosa.midi_to_hz(midi_pitch))


def pitch_kept(audio, midi_pitch, tolerance_cents=50, sample_rate=16000):
    """Whether the note's median f0 lies within tolerance_cents of midi_pitch (an octave error does not)."""
    error = cents_error(median_f0(audio, sample_rate), midi_pitch)
    return bool(np.isfinite(error) and abs(error) <= tolerance_cents)


# f0 contours around a known pitch. pYIN decides which frames are voiced; YIN gives each one's f0, because
# pYIN's f0 is quantised to its pitch bins (10 cents at its usual resolution), coarser than the few cents that
# pitch motion is measured in, and YIN refines its period by parabolic interpolation.
CONTOUR_HOP = 128  # 8 ms at 16 kHz: the DDSP decoder's control rate in its cpu-small preset
CONTOUR_SEMITONES = 3  # searched either side of the labelled pitch, which also makes pYIN far cheaper
CONTOUR_VOICING_RESOLUTION = 0.25  # semitones per pYIN bin: voicing only
# Frames of about three periods of the lowest f0 searched: long enough to find it, short enough to follow
# a vibrato (at 5.5 Hz, 128 ms frames read a 14-cent vibrato as 8 cents, 32 ms ones as 14).
CONTOUR_FRAME_RANGE = (512, 2048)
CONTOUR_AGREEMENT_CENTS = 50  # a frame where YIN and pYIN disagree by more counts as unvoiced


def contour_frame_length(fmin: float, sample_rate: int = 16000) -> int:
    length = 1 << int(np.ceil(np.log2(3 * sample_rate / fmin)))
    return int(np.clip(length, *CONTOUR_FRAME_RANGE))


def f0_contour(audio, midi_pitch, sample_rate=16000, hop_length=CONTOUR_HOP, semitones=CONTOUR_SEMITONES):
    """(cents [frames], voiced [frames]): f0 in cents from the MIDI pitch, and whether each frame is voiced, for
    frames centred on samples 0, hop, 2 hop, ...; cents is 0 where unvoiced."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise MetricsError(f"Expected one mono note (a 1-D array), got shape {audio.shape}.")
    frames = 1 + len(audio) // hop_length
    if not np.any(audio):
        return np.zeros(frames, dtype=np.float32), np.zeros(frames, dtype=bool)
    fmin, fmax = librosa.midi_to_hz([midi_pitch - semitones, midi_pitch + semitones])
    fmax = min(fmax, 0.45 * sample_rate)
    frame_length = contour_frame_length(fmin, sample_rate)
    if len(audio) < frame_length:
        raise MetricsError(f"{len(audio)} samples are too short to track pitch; need at least {frame_length}.")
    options = dict(fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=frame_length, hop_length=hop_length)
    coarse, voiced, _ = librosa.pyin(audio, resolution=CONTOUR_VOICING_RESOLUTION, **options)
    fine = librosa.yin(audio, **options)
    cents = cents_error(fine, midi_pitch)
    agree = np.abs(cents - cents_error(np.where(voiced, coarse, np.nan), midi_pitch)) <= CONTOUR_AGREEMENT_CENTS
    voiced = voiced & agree & np.isfinite(cents)
    return np.where(voiced, cents, 0.0).astype(np.float32), voiced


# ------------------------------------------------------------------------------------------------------------
# What a reconstruction keeps of the original beyond its pitch: its spectrum where it sounds, its instrument,
# its pitch motion.

SOUNDING_RANGE_DB = 60.0  # frames within this of the original's loudest count as sounding
DESCRIPTOR_FFT, DESCRIPTOR_HOP = 1024, 256
DESCRIPTOR_MFCC = 20
ENVELOPE_POINTS = 16  # the level envelope: mean level of 16 equal parts of the note, in dB below its peak
HELD_PART_S = (0.25, 3.0)  # after the attack, before the release
MOVING_SPREAD_CENTS = 4.0  # an original whose f0 spreads more than this over its held part moves
MIN_SPREAD_FRAMES = 20  # voiced frames needed to measure a spread
# A 5-frame (40 ms) running median takes out YIN's frame-to-frame jitter (1.5-2.5 cents on a steady tone below
# MIDI 60, 0.6-1.8 after it) and keeps a 5 Hz vibrato (14.1 cents read as 13.8 before, 13.4 after, at MIDI 60).
SPREAD_MEDIAN_FRAMES = 5


def frame_power_db(audio, n_fft: int, hop: int) -> np.ndarray:
    """Mean power per STFT frame (librosa's centred frames), in dB."""
    power = librosa.feature.rms(y=np.asarray(audio, dtype=np.float32), frame_length=n_fft, hop_length=hop)[0] ** 2
    return 10 * np.log10(power + 1e-20)


def sounding_frames(audio, n_fft: int, hop: int, range_db: float = SOUNDING_RANGE_DB) -> np.ndarray:
    level = frame_power_db(audio, n_fft, hop)
    return level >= level.max() - range_db


def sounding_stft_distance(original, decoded, fft_sizes=(2048, 1024, 512, 256, 128, 64)):
    """The multi-resolution STFT distance (spectral convergence + log-magnitude L1) over the frames where the
    original sounds (within SOUNDING_RANGE_DB of its loudest frame), the decoded note first scaled to the
    original's energy over those frames: how close the sound is where there is one, whatever its level and
    however long the silence after it."""
    original, decoded = np.asarray(original, dtype=np.float32), np.asarray(decoded, dtype=np.float32)
    if original.shape != decoded.shape or original.ndim != 1:
        raise MetricsError(f"Expected two mono notes of one length, got shapes {original.shape} and {decoded.shape}.")
    if not np.any(original):
        raise MetricsError("The original is silent: it has no sounding part to compare.")
    sounding = np.repeat(sounding_frames(original, DESCRIPTOR_FFT, DESCRIPTOR_HOP), DESCRIPTOR_HOP)[:len(original)]
    energy = np.sum(decoded[sounding] ** 2)
    gain = np.sqrt(np.sum(original[sounding] ** 2) / energy) if energy > 0 else 1.0
    decoded = decoded * gain
    distances = []
    for n_fft in fft_sizes:
        frames = sounding_frames(original, n_fft, n_fft // 4)
        magnitude_a = np.abs(librosa.stft(original, n_fft=n_fft, hop_length=n_fft // 4))[:, frames]
        magnitude_b = np.abs(librosa.stft(decoded, n_fft=n_fft, hop_length=n_fft // 4))[:, frames]
        convergence = np.linalg.norm(magnitude_a - magnitude_b) / (np.linalg.norm(magnitude_a) + EPSILON)
        log_l1 = np.mean(np.abs(np.log(magnitude_a + EPSILON) - np.log(magnitude_b + EPSILON)))
        distances.append(convergence + log_l1)
    return float(np.mean(distances))


def timbre_descriptor(audio, sample_rate=16000) -> np.ndarray:
    """A fixed description of a note's timbre: mean and spread of its MFCCs and of its spectral shape (centroid,
    bandwidth, roll-off, flatness, log-scaled) over its sounding frames, and its level envelope. Level does not
    enter: the note is read at unit peak and the envelope is relative to its loudest part."""
    audio = np.asarray(audio, dtype=np.float32)
    peak = np.abs(audio).max(initial=0.0)
    if peak == 0:
        raise MetricsError("A silent note has no timbre to describe.")
    audio = audio / peak
    spectrum = np.abs(librosa.stft(audio, n_fft=DESCRIPTOR_FFT, hop_length=DESCRIPTOR_HOP))
    frames = sounding_frames(audio, DESCRIPTOR_FFT, DESCRIPTOR_HOP)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(librosa.feature.melspectrogram(S=spectrum ** 2, sr=sample_rate)),
                                n_mfcc=DESCRIPTOR_MFCC)
    shape = np.log(np.concatenate([
        librosa.feature.spectral_centroid(S=spectrum, sr=sample_rate),
        librosa.feature.spectral_bandwidth(S=spectrum, sr=sample_rate),
        librosa.feature.spectral_rolloff(S=spectrum, sr=sample_rate),
        librosa.feature.spectral_flatness(S=spectrum),
    ]) + 1e-6)
    level = frame_power_db(audio, DESCRIPTOR_FFT, DESCRIPTOR_HOP)
    parts = np.array_split(level, ENVELOPE_POINTS)
    envelope = np.maximum(np.array([part.mean() for part in parts]) - level.max(), -SOUNDING_RANGE_DB)
    features = np.concatenate([mfcc, shape])[:, frames]
    return np.concatenate([features.mean(1), features.std(1), envelope]).astype(np.float32)


def retrieval_hits(queries: np.ndarray, originals: np.ndarray, instruments, leave_one_out=False) -> np.ndarray:
    """Whether each query's nearest original (Euclidean, every feature standardised over the originals) is of
    the query's own instrument; query i is original i's reconstruction. With leave_one_out (the originals as
    queries) a note's own original is not a candidate."""
    instruments = np.asarray(instruments)
    mean, std = originals.mean(0), originals.std(0) + 1e-8
    a, b = (queries - mean) / std, (originals - mean) / std
    distances = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    if leave_one_out:
        np.fill_diagonal(distances, np.inf)
    return instruments[np.argmin(distances, axis=1)] == instruments


def retrieval_chance(instruments, leave_one_out=False) -> float:
    """The top-1 retrieval rate of a random nearest original."""
    instruments = np.asarray(instruments)
    same = (instruments[:, None] == instruments[None, :]).sum(1)
    return float(np.mean((same - 1) / (len(instruments) - 1) if leave_one_out else same / len(instruments)))


def f0_spread(audio, midi_pitch, sample_rate=16000) -> float:
    """Standard deviation in cents of the f0 over the voiced frames of the note's held part; nan with fewer than
    MIN_SPREAD_FRAMES voiced there."""
    cents, voiced = f0_contour(audio, midi_pitch, sample_rate)
    times = np.arange(len(cents)) * CONTOUR_HOP / sample_rate
    held = voiced & (times >= HELD_PART_S[0]) & (times < HELD_PART_S[1])
    if held.sum() < MIN_SPREAD_FRAMES:
        return float("nan")
    return float(np.std(scipy.ndimage.median_filter(cents[held], SPREAD_MEDIAN_FRAMES, mode="nearest")))
