"""NSynth in PyTorch: WaveNet and spectral autoencoders of musical notes, and the tools around them."""

import torch


def default_device() -> torch.device:
    """CUDA when present, the CPU otherwise."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
