"""The paper's spectral baseline: a convolutional autoencoder on log-power spectrograms.

A 4 s note becomes a [512 x 256] image (frequency x time) scaled to [0, 1]; nine strided convolutions
shrink it to a single 1x1 cell of 1984 channels (Z), and mirrored transposed convolutions grow it back
to a sigmoid magnitude. Phase is not modelled, so audio comes back through Griffin-Lim.

With pitch conditioning, an optional harmonic comb (off in the paper preset) lets a small decoder draw the
partials: besides the log-magnitude envelope, the last layer predicts a comb depth per bin, and the output is
sigmoid(envelope + depth * cos(2 pi f / f0)), peaking at every multiple of the conditioned pitch's f0. Without
it, a decoder whose top layers have 8-16 channels learns only the average envelope and loses the pitch.
"""

from dataclasses import dataclass

import librosa
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nsynth_core.audio.core import NOTE_LENGTH, SAMPLE_RATE, midi_to_hz

N_FFT = 1024
HOP_LENGTH = 256
TOP_DB = 120.0
POWER_FLOOR = 1e-13  # below any real note's power, so the dB floor is set by TOP_DB alone
FREQUENCY_BINS = 512  # the 513th (Nyquist) bin is cropped so strides of 2 divide evenly
FRAMES = 256  # 1 + 64000 // 256 = 251 STFT frames, zero-padded (= silence) to a power of two
STFT_FRAMES = 1 + NOTE_LENGTH // HOP_LENGTH

# Every encoder layer but the last halves both axes; the last halves frequency only, which turns
# [512 x 256] into [1 x 1]. The decoder undoes them in reverse order.
ENCODER_KERNELS = [(5, 5)] + [(4, 4)] * 8
ENCODER_STRIDES = [(2, 2)] * 8 + [(2, 1)]
DECODER_KERNELS = [(4, 4)] * 7 + [(5, 5), (5, 5)]
DECODER_STRIDES = [(2, 2)] * 8 + [(2, 1)]


class SpectralError(ValueError):
    """Input or configuration the spectral autoencoder cannot work with."""


@dataclass
class SpectralConfig:
    encoder_channels: tuple = (128, 128, 128, 256, 256, 256, 512, 512, 512)
    bottleneck_channels: int = 1024
    latent_size: int = 1984
    decoder_channels: tuple = (512, 512, 256, 256, 256, 128, 128, 128, 128)
    leak: float = 0.1
    pitch_classes: int = 0  # 0: no pitch input; else the decoder also sees a one-hot MIDI pitch
    harmonic_comb: bool = False  # needs pitch_classes; see the module docstring
    # Frequency-weighted MSE: the weight falls linearly from low_frequency_weight at 0 Hz to 1 at
    # flat_weight_above_hz and stays 1 above, so the loss cares most where pitch lives.
    low_frequency_weight: float = 10.0
    flat_weight_above_hz: float = 4000.0

    def __post_init__(self):
        # Accept lists too, as they come back from a JSON checkpoint.
        self.encoder_channels = tuple(self.encoder_channels)
        self.decoder_channels = tuple(self.decoder_channels)
        for name in ("encoder_channels", "decoder_channels"):
            if len(getattr(self, name)) != len(ENCODER_STRIDES):
                raise SpectralError(
                    f"{name} needs {len(ENCODER_STRIDES)} entries, one per strided layer, "
                    f"got {len(getattr(self, name))}."
                )
        if self.pitch_classes < 0:
            raise SpectralError(f"pitch_classes must be 0 (off) or positive, got {self.pitch_classes}.")
        if self.harmonic_comb and not self.pitch_classes:
            raise SpectralError("The harmonic comb is placed by the conditioned pitch: it needs pitch_classes.")

    @classmethod
    def preset(cls, name, **overrides):
        presets = {
            "paper": {},
            # A training step at batch 8 (forward, backward, Adam) took ~0.45 s on one otherwise idle
            # CPU core (torch 2.13, 1 thread); most of it goes to the two full-size decoder layers.
            "cpu-small": dict(
                encoder_channels=(8, 16, 16, 32, 32, 32, 64, 64, 64),
                bottleneck_channels=128,
                decoder_channels=(64, 64, 32, 32, 32, 16, 16, 8, 8),
            ),
        }
        if name not in presets:
            raise SpectralError(f"Unknown spectral preset {name!r}; choose one of {sorted(presets)}.")
        return cls(**{**presets[name], **overrides})


def same_padding(kernel, stride):
    """(left, right, top, bottom) zero padding that makes a conv give exactly input / stride."""
    (kh, kw), (sh, sw) = kernel, stride
    top, left = (kh - sh) // 2, (kw - sw) // 2
    return (left, kw - sw - left, top, kh - sh - top)


def conv_block(in_channels, out_channels, kernel, stride, leak):
    return nn.Sequential(
        nn.ZeroPad2d(same_padding(kernel, stride)),
        nn.Conv2d(in_channels, out_channels, kernel, stride, bias=False),  # BatchNorm brings the bias
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(leak),
    )


def transposed_block(in_channels, out_channels, kernel, stride, leak):
    # Transposed-conv output is (in - 1) * s - 2p + k + extra; choose p and extra to get in * s.
    padding = tuple((k - s + 1) // 2 for k, s in zip(kernel, stride))
    extra = tuple(2 * p - (k - s) for p, k, s in zip(padding, kernel, stride))
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, kernel, stride, padding, extra, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(leak),
    )


def frequency_weights(low_frequency_weight, flat_weight_above_hz):
    """Loss weight per spectrogram bin, shaped to broadcast over [B, 1, bins, frames]."""
    frequencies = librosa.fft_frequencies(sr=SAMPLE_RATE, n_fft=N_FFT)[:FREQUENCY_BINS]
    ramp = np.interp(frequencies, [0.0, flat_weight_above_hz], [low_frequency_weight, 1.0])
    return torch.tensor(ramp, dtype=torch.float32).view(1, 1, -1, 1)


def harmonic_comb(pitch):
    """cos(2 pi f / f0) per bin for MIDI pitches [B] -> [B, 1, 512, 1]: +1 on every partial, -1 halfway
    between partials, and -1 below f0 / 2, where a note has no partial."""
    f0 = midi_to_hz(pitch).float()
    frequencies = torch.arange(FREQUENCY_BINS, device=pitch.device) * (SAMPLE_RATE / N_FFT)
    harmonic = frequencies[None, :] / f0[:, None]
    comb = torch.where(harmonic >= 0.5, torch.cos(2 * torch.pi * harmonic), -1.0)
    return comb[:, None, :, None]


def spectrogram_to_audio(magnitude, griffin_lim_iters=100):
    """Scaled magnitudes [B, 1, 512, 256] in [0, 1] -> peak-normalised audio [B, 64000] by Griffin-Lim."""
    magnitude = torch.as_tensor(magnitude).detach().float().cpu().numpy()
    if magnitude.ndim != 4 or magnitude.shape[1:] != (1, FREQUENCY_BINS, FRAMES):
        raise SpectralError(
            f"Expected spectrograms shaped [batch, 1, {FREQUENCY_BINS}, {FRAMES}], got {list(magnitude.shape)}."
        )
    decibels = (magnitude[:, 0, :, :STFT_FRAMES] - 1.0) * TOP_DB
    amplitude = 10.0 ** (decibels / 20.0)
    amplitude[magnitude[:, 0, :, :STFT_FRAMES] <= 0.0] = 0.0  # the dB floor was silence, not -120 dB
    amplitude = np.pad(amplitude, ((0, 0), (0, 1), (0, 0)))  # give back the cropped Nyquist bin, empty
    audio = librosa.griffinlim(
        amplitude,
        n_iter=griffin_lim_iters,
        hop_length=HOP_LENGTH,
        n_fft=N_FFT,
        length=NOTE_LENGTH,
        random_state=0,  # the same spectrogram always sounds the same
    )
    peak = np.abs(audio).max(axis=-1, keepdims=True)
    return (audio / np.maximum(peak, 1e-9)).astype(np.float32)


class SpectralAutoencoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        c = config
        encoder_in = (1,) + c.encoder_channels[:-1]
        self.encoder = nn.Sequential(
            *[conv_block(i, o, k, s, c.leak)
              for i, o, k, s in zip(encoder_in, c.encoder_channels, ENCODER_KERNELS, ENCODER_STRIDES)],
            conv_block(c.encoder_channels[-1], c.bottleneck_channels, (1, 1), (1, 1), c.leak),
            nn.Conv2d(c.bottleneck_channels, c.latent_size, 1, bias=False),
            nn.BatchNorm2d(c.latent_size),  # Z is normalised but left linear
        )
        # A one-hot pitch concatenated to Z feeds the first (linear, 1x1) layer, which is the same as
        # adding a learned pitch embedding.
        decoder_in = (c.bottleneck_channels,) + c.decoder_channels[:-1]
        self.decoder = nn.Sequential(
            transposed_block(c.latent_size + c.pitch_classes, c.bottleneck_channels, (1, 1), (1, 1), c.leak),
            *[transposed_block(i, o, k, s, c.leak)
              for i, o, k, s in zip(decoder_in, c.decoder_channels, DECODER_KERNELS, DECODER_STRIDES)],
            # Log-magnitude envelope, and with the harmonic comb also the comb depth.
            nn.Conv2d(c.decoder_channels[-1], 2 if c.harmonic_comb else 1, 1),
        )
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        self.register_buffer(
            "loss_weights", frequency_weights(c.low_frequency_weight, c.flat_weight_above_hz), persistent=False
        )

    def spectrogram(self, audio):
        """Audio [B, 64000] -> log power [B, 1, 512, 256]: 0 dB at each note's loudest bin is 1, -120 dB is 0."""
        audio = self._as_audio_batch(audio)
        stft = torch.stft(
            audio, N_FFT, HOP_LENGTH, window=self.window, center=True, pad_mode="constant", return_complex=True
        )
        power = stft.abs().square()
        loudest = power.amax(dim=(-2, -1), keepdim=True)
        decibels = 10.0 * torch.log10(power.clamp(min=POWER_FLOOR) / loudest.clamp(min=POWER_FLOOR))
        scaled = decibels.clamp(min=-TOP_DB) / TOP_DB + 1.0
        scaled = scaled * (loudest > POWER_FLOOR)  # silence stays 0 instead of being its own 0 dB
        scaled = F.pad(scaled[:, :FREQUENCY_BINS], (0, FRAMES - scaled.shape[-1]))
        return scaled.unsqueeze(1)

    def encode(self, audio):
        return self.encoder(self.spectrogram(audio)).flatten(1)

    def decode_magnitude(self, z, pitch=None):
        """Z [B, latent] (+ MIDI pitch [B]) -> the scaled log-magnitude spectrogram [B, 1, bins, frames]."""
        if z.ndim != 2 or z.shape[1] != self.config.latent_size:
            raise SpectralError(f"Expected Z shaped [batch, {self.config.latent_size}], got {list(z.shape)}.")
        z = z[:, :, None, None]
        pitch = self._pitch_labels(pitch, len(z))
        if pitch is not None:
            one_hot = F.one_hot(pitch, self.config.pitch_classes).to(z.dtype)
            z = torch.cat([z, one_hot[:, :, None, None]], dim=1)
        logits = self.decoder(z)
        if self.config.harmonic_comb:
            envelope, depth = logits.split(1, dim=1)
            logits = envelope + depth * harmonic_comb(pitch)
        return torch.sigmoid(logits)

    def forward(self, audio, pitch=None):
        target = self.spectrogram(audio)
        magnitude = self.decode_magnitude(self.encoder(target).flatten(1), pitch)
        return magnitude, target

    def loss(self, audio, pitch=None):
        magnitude, target = self(audio, pitch)
        return (self.loss_weights * (magnitude - target).square()).mean()

    @torch.no_grad()
    def reconstruct(self, audio, pitch=None, griffin_lim_iters=100):
        """Audio [B, 64000] -> its reconstruction, peak-normalised np.ndarray [B, 64000]."""
        return spectrogram_to_audio(self(audio, pitch)[0], griffin_lim_iters)

    def _as_audio_batch(self, audio):
        audio = torch.as_tensor(audio, dtype=torch.float32, device=self.window.device)
        if audio.ndim != 2 or audio.shape[1] != NOTE_LENGTH:
            raise SpectralError(
                f"Expected audio shaped [batch, {NOTE_LENGTH}] (4 s at {SAMPLE_RATE} Hz), got {list(audio.shape)}."
            )
        return audio

    def _pitch_labels(self, pitch, batch_size):
        classes = self.config.pitch_classes
        if classes == 0:
            if pitch is not None:
                raise SpectralError("This model was built without pitch conditioning; leave pitch out.")
            return None
        if pitch is None:
            raise SpectralError(f"This model needs a MIDI pitch (0-{classes - 1}) for each note.")
        pitch = torch.as_tensor(pitch, device=self.window.device).long().reshape(-1)
        if len(pitch) != batch_size or pitch.min() < 0 or pitch.max() >= classes:
            raise SpectralError(f"Expected {batch_size} MIDI pitches in 0-{classes - 1}, got {pitch.tolist()}.")
        return pitch
