"""Tiny randomly initialised checkpoints, so explorer and app tests run in seconds without a trained model."""

import torch

from nsynth_core.checkpoint import save_checkpoint
from nsynth_core.spectral import SpectralAutoencoder, SpectralConfig
from nsynth_core.wavenet import WaveNetAutoencoder, WaveNetConfig

TINY_WAVENET = WaveNetConfig(encoder_channels=8, encoder_layers=2, encoder_cycle=2, residual_channels=8,
                             skip_channels=8, decoder_layers=2, decoder_cycle=2)


def write_tiny_checkpoints(directory, seed=0):
    """Writes directory/tiny-wavenet and directory/tiny-spectral; returns their paths (without suffix)."""
    torch.manual_seed(seed)
    wavenet = directory / "tiny-wavenet"
    spectral = directory / "tiny-spectral"
    save_checkpoint(WaveNetAutoencoder(TINY_WAVENET), wavenet, {"note": "random weights for tests"})
    save_checkpoint(SpectralAutoencoder(SpectralConfig.preset("cpu-small")).eval(), spectral)
    return wavenet, spectral
