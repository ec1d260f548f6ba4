"""Rainbowgram (Engel et al. 2017): a constant-Q transform whose brightness is log power and whose colour is
instantaneous frequency, so timbre shows as texture and phase coherence as bands of steady colour.

CQT settings follow the paper: hop 256, 40 bins per octave over 6 octaves from C2, filter scale 0.8.
"""

import librosa
import numpy as np
from PIL import Image

from nsynth_core.audio.core import SAMPLE_RATE

HOP_LENGTH = 256
BINS_PER_OCTAVE = 40
OCTAVES = 6
FILTER_SCALE = 0.8
LOWEST_NOTE = "C2"
TOP_DB = 80.0
# librosa halves the rate once per octave below the top; the lowest octave's signal must still fill a 512-point
# FFT, so shorter audio is zero-padded (and the extra frames cut off again).
MIN_SAMPLES = 512 * 2 ** (OCTAVES - 1)
# Instantaneous frequency spans red (-pi per hop) through violet (+pi); stopping short of a full hue circle keeps
# the two extremes apart.
HUE_RANGE = 0.8


def constant_q(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Complex CQT [240 bins, frames] of mono audio; one frame per 256 samples (plus one, centred frames)."""
    audio = np.asarray(audio, dtype=np.float32)
    frames = 1 + len(audio) // HOP_LENGTH
    padded = np.pad(audio, (0, max(0, MIN_SAMPLES - len(audio))))
    cqt = librosa.cqt(padded, sr=sample_rate, hop_length=HOP_LENGTH, fmin=librosa.note_to_hz(LOWEST_NOTE),
                      n_bins=BINS_PER_OCTAVE * OCTAVES, bins_per_octave=BINS_PER_OCTAVE, filter_scale=FILTER_SCALE)
    return cqt[:, :frames]


def log_power_and_if(cqt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log power scaled to [0, 1] over the top 80 dB, instantaneous frequency in [-1, 1] as phase step / pi)."""
    power_db = librosa.power_to_db(np.abs(cqt) ** 2, ref=np.max, amin=1e-13, top_db=TOP_DB)
    brightness = 1.0 + power_db / TOP_DB
    # Unwrapping along time makes each step the phase advance in (-pi, pi]; the first frame has no predecessor.
    phase = np.unwrap(np.angle(cqt), axis=1)
    phase_step = np.diff(phase, axis=1, prepend=phase[:, :1])
    return brightness.astype(np.float32), np.clip(phase_step / np.pi, -1.0, 1.0).astype(np.float32)


def rainbowgram(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """RGB image uint8 [240, frames, 3], low notes at the bottom, time left to right. Silence is black."""
    brightness, instantaneous_frequency = log_power_and_if(constant_q(audio, sample_rate))
    if not np.any(np.abs(audio) > 0):
        brightness = np.zeros_like(brightness)
    hue = (instantaneous_frequency + 1.0) / 2.0 * HUE_RANGE
    channels = [np.round(channel[::-1] * 255).astype(np.uint8) for channel in (hue, np.ones_like(hue), brightness)]
    return np.asarray(Image.merge("HSV", [Image.fromarray(channel) for channel in channels]).convert("RGB"))
