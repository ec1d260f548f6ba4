"""How close a reconstruction is to its original: spectral distance and pitch."""

import librosa
import numpy as np

# NSynth spans MIDI 21-108; pYIN searches a little beyond so notes at the ends are not clipped.
LOWEST_F0_HZ = librosa.midi_to_hz(20)
HIGHEST_F0_HZ = librosa.midi_to_hz(109)
# Analyse 1 s of the held part of a note: after the attack's transient, well before the release at 3 s.
PITCH_WINDOW_S = (0.25, 1.25)
# 256 ms at 16 kHz; 128 ms frames read a MIDI-21 sine 20 cents sharp, these within 10 cents.
PITCH_FRAME_LENGTH = 4096
PITCH_HOP_LENGTH = 512
# pYIN's cost is its pitch tracker's (Viterbi over 2 states per pitch bin, squared): a first pass on 0.25-semitone
# bins finds the region, the second searches 1.5 octaves either side of it on median_f0's own 0.1-semitone bins.
# On 636 rendered NSynth test notes it found the MIDI pitch median_f0 finds in all but one (a string note both
# read far from its label), at a quarter of the cost; 1 octave either side missed more (a jump of an octave
# inside the narrower range), and 0.25-semitone bins alone turned one right pitch wrong.
COARSE_RESOLUTION = 0.25
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
    """median_f0 in two cheaper passes: a coarse one over the whole range, then median_f0's own bins around it."""
    coarse = median_f0(audio, sample_rate, resolution=COARSE_RESOLUTION)
    if np.isnan(coarse):
        return coarse
    centre = librosa.hz_to_midi(coarse)
    lowest, highest = librosa.hz_to_midi([LOWEST_F0_HZ, HIGHEST_F0_HZ])
    # Whole MIDI numbers lie on median_f0's bins (which start at a whole one), so the bins are the same ones.
    low = max(lowest, np.floor(centre - FINE_SEARCH_SEMITONES))
    high = min(highest, np.ceil(centre + FINE_SEARCH_SEMITONES))
    return median_f0(audio, sample_rate, librosa.midi_to_hz(low), librosa.midi_to_hz(high))


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
