"""Batched sample-by-sample generation from Z with the decoder's cached incremental step."""

from typing import Callable

import numpy as np
import torch

from nsynth_core.audio.core import mu_law_decode
from nsynth_core.engine import stopping
from nsynth_core.models.wavenet import WaveNetAutoencoder, steady_phase

STOP_CHECK_STEPS = 64  # samples between checks for a stopped decode: far under a second on any model

ProgressCallback = Callable[[int, int], None]


def sample_logits(logits: torch.Tensor, temperature: float, uniform: torch.Tensor | None) -> torch.Tensor:
    """Class indices [B] from logits [B, 256]; temperature 0 is greedy (argmax).

    Otherwise inverse-CDF sampling of softmax(logits / temperature) with one uniform [B] in [0, 1) per row:
    a scheme a compiled engine can repeat exactly (nsynth_core/fastgen.py).
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    cdf = torch.softmax(logits.float() / temperature, dim=-1).cumsum(dim=-1)
    index = torch.searchsorted(cdf, uniform.unsqueeze(-1) * cdf[:, -1:], right=True)[:, 0]
    return index.clamp(max=logits.shape[-1] - 1)


def generation_excitation(model: WaveNetAutoencoder, pitch: torch.Tensor | None, start: int,
                          length: int) -> torch.Tensor | None:
    """The excitation [B, E, length] from sample `start` of a generated note (phase 0 at its first sample), or
    None when the model has none."""
    if not model.config.excitation_harmonics:
        return None
    return model.excitation(pitch, steady_phase(pitch, start, length, model.config.sample_rate))


def sampling_uniforms(length: int, batch: int, temperature: float, seed: int | None,
                      device=None) -> torch.Tensor | None:
    """The uniforms [length, batch] that draw every sample (None when greedy), all drawn up front from `seed`."""
    if temperature <= 0:
        return None
    generator = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    return torch.rand(length, batch, generator=generator, device=device)


@torch.no_grad()
def generate(model: WaveNetAutoencoder, z: torch.Tensor, pitch: torch.Tensor | None = None,
             temperature: float = 1.0, seed: int | None = None, progress: ProgressCallback | None = None,
             length: int | None = None) -> np.ndarray:
    """Decode Z [B, frames, latent] into audio [B, length] (default frames * hop) in [-1, 1].

    All B notes are generated together, one sample per step, each step reusing the cached past of every layer.
    """
    model.eval()
    device = next(model.parameters()).device
    z = z.to(device)
    batch, frames, _ = z.shape
    length = length or frames * model.config.hop_length
    if length > frames * model.config.hop_length:
        raise ValueError(f"Cannot decode {length} samples from {frames} frames of Z.")
    pitch = None if pitch is None else pitch.to(device)
    condition = model.conditioning(z, pitch)
    state = model.decoder.init_state(condition)
    drive = generation_excitation(model, pitch, 0, length)
    drive = None if drive is None else drive.to(z.dtype)
    uniforms = sampling_uniforms(length, batch, temperature, seed, device)
    x_t = torch.zeros(batch, device=device, dtype=z.dtype)  # the shifted-in sample before the first is silence
    codes = torch.empty(batch, length, dtype=torch.long, device=device)
    report_every = max(1, length // 100)
    for t in range(length):
        if t % STOP_CHECK_STEPS == 0:
            stopping.checkpoint()
        logits = model.decoder.step(x_t, state, t, None if drive is None else drive[:, :, t])
        uniform = None if uniforms is None else uniforms[t]
        code = sample_logits(logits, temperature, uniform) - 128  # mu-law code in [-128, 127]
        codes[:, t] = code
        x_t = code.to(z.dtype) / 128.0
        if progress is not None and ((t + 1) % report_every == 0 or t + 1 == length):
            progress(t + 1, length)
    return mu_law_decode(codes.cpu().numpy()).astype(np.float32)
