"""The DDSP decoder's losses (nsynth_core/models/ddsp.py): DDSP's multi-resolution spectral distance, a log-mel
term, a band-movement term, and the pitch-motion terms against a note's measured f0 contour."""

import auraloss
import librosa
import torch
import torch.nn.functional as F

from nsynth_core.audio.metrics import MOVING_SPREAD_CENTS

FFT_SIZES = (2048, 1024, 512, 256, 128, 64)
_spectral_loss = auraloss.freq.MultiResolutionSTFTLoss(
    fft_sizes=list(FFT_SIZES), hop_sizes=[n // 4 for n in FFT_SIZES], win_lengths=list(FFT_SIZES),
    w_sc=0.0, w_log_mag=1.0, w_lin_mag=1.0)


def spectral_loss(decoded: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DDSP's loss: mean L1 distance of linear and of log STFT magnitudes over six FFT sizes (2048 .. 64)."""
    return _spectral_loss(decoded[:, None], target[:, None])


# Linear-frequency bins spend most of the log term on the noise above a few kHz; on a mel scale the partials of
# the note's lower harmonics, which carry most of its colour, weigh as much as the rest.
_mel_loss = auraloss.freq.MelSTFTLoss(16000, fft_size=2048, hop_size=512, win_length=2048, n_mels=128,
                                      w_sc=0.0, w_log_mag=1.0, w_lin_mag=0.0)


def mel_loss(decoded: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean L1 distance of log mel-band magnitudes (FFT 2048, hop 512, 128 bands, 16 kHz)."""
    return _mel_loss(decoded[:, None], target[:, None])


_MODULATION_MEL = torch.from_numpy(librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64)).float()


def band_movement(audio: torch.Tensor) -> torch.Tensor:
    """[B, 64]: mean |change| from one frame to the next of each mel band's log power (FFT 1024, hop 256)."""
    spectrum = torch.stft(audio, 1024, 256, window=torch.hann_window(1024, device=audio.device),
                          return_complex=True).abs() ** 2
    log_mel = torch.log(_MODULATION_MEL.to(audio.device) @ spectrum + 1e-7)
    return (log_mel[..., 1:] - log_mel[..., :-1]).abs().mean(-1)


def modulation_loss(decoded: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 distance of the band movements: as much wavering (vibrato, chorus, tremolo) as the target, in any phase."""
    return (band_movement(decoded) - band_movement(target)).abs().mean()


def at_control_rate(cents: torch.Tensor, motion: torch.Tensor, voiced: torch.Tensor):
    """A measured contour and its voicing at another frame rate than the controls [B, F], interpolated to theirs."""
    if motion.shape[-1] != cents.shape[-1]:
        motion = F.interpolate(motion[:, None].float(), size=cents.shape[-1], mode="linear")[:, 0]
        voiced = F.interpolate(voiced[:, None].float(), size=cents.shape[-1], mode="nearest")[:, 0]
    return motion, voiced.to(cents.dtype)


def motion_loss(cents: torch.Tensor, motion: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """Mean |cents - motion| over the voiced frames (0 when none is voiced)."""
    motion, voiced = at_control_rate(cents, motion, voiced)
    return ((cents - motion).abs() * voiced).sum() / voiced.sum().clamp(min=1)


def voiced_spread(cents: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """[B]: the standard deviation of each row of `cents` over its voiced frames (0 with fewer than two)."""
    count = voiced.sum(-1)
    mean = (cents * voiced).sum(-1) / count.clamp(min=1)
    variance = (((cents - mean[:, None]) ** 2) * voiced).sum(-1) / (count - 1).clamp(min=1)
    return (variance + 1e-6).sqrt() * (count > 1)


def motion_spread_loss(cents: torch.Tensor, motion: torch.Tensor, voiced: torch.Tensor) -> torch.Tensor:
    """Mean over the notes of |spread of the deviation - spread of the measured motion| in cents, over voiced
    frames; a steady note's target is no spread."""
    motion, voiced = at_control_rate(cents, motion, voiced)
    target = voiced_spread(motion, voiced)
    target = target * (target > MOVING_SPREAD_CENTS)  # below it, a steady note's tracker jitter: asked for none
    return (voiced_spread(cents, voiced) - target).abs().mean()
