"""The WaveNet autoencoder of Engel et al. 2017 ("h512_bo16" in Magenta).

audio --mu-law--> temporal encoder (non-causal dilated residual stack) --bottleneck, avg-pool 512--> Z [frames, 16]
Z --per-layer bias--> causal WaveNet decoder (gated units, residual + skip paths) --> 256-way softmax per sample.

Each causal convolution carries its own incremental `step`, so fast generation (generate.py) runs the very same
weights one sample at a time; tests check the two paths agree.

Optional, beyond the paper (off in its preset): a pitch-conditioned decoder can also be driven by a harmonic
excitation, the cosine and sine of the first few harmonics of the note's f0 at every sample, as in
neural source-filter vocoders. In training its phase follows the note's own fundamental (measured by
heterodyning); in generation it starts at zero, so the generated waveform locks to it and keeps the pitch.
"""

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from nsynth_core.audio.core import midi_to_hz, mu_law_encode


@dataclass
class WaveNetConfig:
    # temporal encoder
    encoder_channels: int = 128
    encoder_layers: int = 30
    encoder_cycle: int = 10  # dilation 2^(i mod cycle)
    latent_channels: int = 16
    hop_length: int = 512  # one Z frame per 32 ms at 16 kHz
    # WaveNet decoder
    residual_channels: int = 512  # gated units produce this many; the dilated conv outputs twice as many
    skip_channels: int = 256
    decoder_layers: int = 30
    decoder_cycle: int = 10
    kernel_size: int = 3
    quantization_channels: int = 256
    # optional pitch conditioning (the paper's one-hot pitch concatenated to Z); 0 = off
    pitch_classes: int = 0
    # optional harmonic excitation (needs pitch conditioning): cos and sin of this many harmonics; 0 = off
    excitation_harmonics: int = 0
    sample_rate: int = 16000

    @staticmethod
    def preset(name: str) -> "WaveNetConfig":
        if name not in PRESETS:
            raise ValueError(f"Unknown WaveNet preset {name!r}; choose one of {sorted(PRESETS)}.")
        return replace(PRESETS[name])

    def __post_init__(self):
        if self.excitation_harmonics and not self.pitch_classes:
            raise ValueError("The harmonic excitation follows the conditioned pitch: it needs pitch_classes.")

    @property
    def excitation_channels(self) -> int:
        return 2 * self.excitation_harmonics

    @property
    def condition_channels(self) -> int:
        return self.latent_channels + self.pitch_classes

    @property
    def receptive_field(self) -> int:
        """Samples of past audio the decoder sees for one prediction (start conv + dilated stack)."""
        dilations = sum(2 ** (i % self.decoder_cycle) for i in range(self.decoder_layers))
        return (self.kernel_size - 1) * (1 + dilations) + 1


PRESETS = {
    # Exactly Magenta's h512_bo16 (about 61.5 M parameters).
    "paper": WaveNetConfig(),
    # What fits two CPU cores: a 20-layer decoder (receptive field 4 095 samples, 256 ms) of 64 channels.
    "cpu-small": WaveNetConfig(
        encoder_channels=64, encoder_layers=20, encoder_cycle=10,
        residual_channels=64, skip_channels=64, decoder_layers=20, decoder_cycle=10,
    ),
}


class CausalConv1d(nn.Conv1d):
    """Conv1d that only looks at the past, with an incremental step for sample-by-sample generation."""

    def __init__(self, in_channels, out_channels, kernel_size, dilation=1):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left_padding = (kernel_size - 1) * dilation

    def forward(self, x):
        return super().forward(F.pad(x, (self.left_padding, 0)))

    # Incremental inference: a circular queue of the last `left_padding` inputs (the Fast-WaveNet cache).
    def init_queue(self, batch_size: int, device=None, dtype=None) -> torch.Tensor:
        return torch.zeros(batch_size, self.in_channels, self.left_padding, device=device, dtype=dtype)

    def step(self, x_t: torch.Tensor, queue: torch.Tensor, t: int) -> torch.Tensor:
        """Output at time t [B, C_out] from the newest input x_t [B, C_in]; updates `queue` in place.

        Slot t % left_padding holds the input from t - left_padding, the oldest tap, so it is read before
        being overwritten by x_t.
        """
        d, k, span = self.dilation[0], self.kernel_size[0], self.left_padding
        past = [(t - (k - 1 - j) * d) % span for j in range(k - 1)]
        taps = torch.cat([queue[:, :, past], x_t.unsqueeze(-1)], dim=-1)  # inputs at t-(k-1)d, ..., t-d, t
        queue[:, :, t % span] = x_t
        return torch.einsum("bik,oik->bo", taps, self.weight) + self.bias


def pointwise(conv: nn.Conv1d, x_t: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution applied to one time step [B, C_in] -> [B, C_out]."""
    return F.linear(x_t, conv.weight[:, :, 0], conv.bias)


class EncoderLayer(nn.Module):
    def __init__(self, channels, kernel_size, dilation):
        super().__init__()
        self.dilated = nn.Conv1d(channels, channels, kernel_size, dilation=dilation,
                                 padding=dilation * (kernel_size - 1) // 2)
        self.residual = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        return x + self.residual(F.relu(self.dilated(F.relu(x))))


class TemporalEncoder(nn.Module):
    """Non-causal dilated residual stack, bottleneck to `latent_channels`, average pooling by `hop_length`."""

    def __init__(self, config: WaveNetConfig):
        super().__init__()
        c, k = config.encoder_channels, config.kernel_size
        self.hop_length = config.hop_length
        self.start = nn.Conv1d(1, c, k, padding=(k - 1) // 2)
        self.layers = nn.ModuleList(
            EncoderLayer(c, k, 2 ** (i % config.encoder_cycle)) for i in range(config.encoder_layers))
        self.bottleneck = nn.Conv1d(c, config.latent_channels, 1)

    def forward(self, x_scaled: torch.Tensor) -> torch.Tensor:
        """x_scaled [B, 1, T] (mu-law / 128) -> Z [B, latent, T // hop]."""
        h = self.start(x_scaled)
        for layer in self.layers:
            h = layer(h)
        return F.avg_pool1d(self.bottleneck(h), self.hop_length)

    @torch.no_grad()
    def infer(self, x_scaled: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """`forward` for inference, the same weights laid out for speed: Z [B, latent, T // hop].

        One note at a time, time-major ([T, C] rows), each dilated convolution as three in-place matrix products
        on row-shifted views (one per tap), so no padded or stacked copy of the activations is made. Memory stays
        at a few [T, C] buffers whatever the batch; on two CPU cores this runs at about half the matmul peak,
        where the batched convolutions of `forward` reach a fifth. The residual stack runs in `dtype` (bfloat16
        is twice as fast where the CPU has it in hardware: precision.encoder_dtype); the bottleneck and Z are
        float32. Frames that hear only digital silence are not computed again (_infer_sounding).
        """
        return torch.stack([self._infer_sounding(x[0], dtype) for x in x_scaled]).transpose(1, 2)

    @property
    def reach(self) -> int:
        """How many samples either side of an output sample its value depends on (the start convolution's and
        every dilated layer's)."""
        return 1 + sum(layer.dilated.dilation[0] for layer in self.layers)

    def _infer_sounding(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """_infer_note, run only over the frames that hear a non-zero input: a frame whose window holds nothing
        but zeros is the same as in a wholly silent note of the same length (kept per length and precision), so
        a short sound padded to 4 s, or a note that ends in digital silence, costs its sounding part."""
        length, hop, reach = x.shape[0], self.hop_length, self.reach
        frames = length // hop
        sounding = torch.nonzero(x).flatten()
        if not len(sounding):
            return self._silent_z(length, dtype)
        first, last = int(sounding[0]), int(sounding[-1])
        # Frames whose window [f hop - reach, (f + 1) hop - 1 + reach] meets a sounding sample, computed from a
        # stretch that holds each of their windows whole, so that its own ends (padded as a note's) change none.
        first_frame = max(0, (first - reach + 1) // hop - 1)
        last_frame = min(frames - 1, (last + reach) // hop)
        start = max(0, (first_frame * hop - reach) // hop * hop)
        end = min(length, (last_frame + 1) * hop + reach)
        if start == 0 and end == length:
            return self._infer_note(x, dtype)
        z = self._silent_z(length, dtype).clone()
        heard = self._infer_note(x[start:end], dtype)
        offset = start // hop
        z[first_frame:last_frame + 1] = heard[first_frame - offset:last_frame + 1 - offset]
        return z

    def _silent_z(self, length: int, dtype: torch.dtype) -> torch.Tensor:
        silent = self.__dict__.setdefault("_silent", {})  # not a buffer: never saved, rebuilt with the weights
        if (length, dtype) not in silent:
            silent[(length, dtype)] = self._infer_note(torch.zeros(length, dtype=self.start.weight.dtype), dtype)
        return silent[(length, dtype)]

    def _infer_note(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        length, (k, hop) = x.shape[0], (self.start.kernel_size[0], self.hop_length)
        if k != 3:
            raise ValueError("The inference path is written for kernel size 3, as in the paper.")
        start_taps = F.pad(x, (1, 1)).unfold(0, 3, 1)  # [T, 3]: x[t-1], x[t], x[t+1]
        h = torch.addmm(self.start.bias, start_taps, self.start.weight[:, 0, :].T).to(dtype)
        rectified, gated = torch.empty_like(h), torch.empty_like(h)
        for layer in self.layers:
            d = layer.dilated.dilation[0]
            weight, bias = layer.dilated.weight.to(dtype), layer.dilated.bias.to(dtype)  # [out, in, 3]
            torch.clamp(h, min=0, out=rectified)
            torch.addmm(bias, rectified, weight[:, :, 1].T, out=gated)
            gated[d:].addmm_(rectified[:-d], weight[:, :, 0].T)  # the tap at t - d
            gated[:-d].addmm_(rectified[d:], weight[:, :, 2].T)  # the tap at t + d
            h.addmm_(gated.relu_(), layer.residual.weight[:, :, 0].T.to(dtype)).add_(layer.residual.bias.to(dtype))
        z = torch.addmm(self.bottleneck.bias, h.float(), self.bottleneck.weight[:, :, 0].T)
        frames = length // hop
        return z[: frames * hop].view(frames, hop, -1).mean(dim=1)


class DecoderLayer(nn.Module):
    def __init__(self, config: WaveNetConfig, dilation: int):
        super().__init__()
        r = config.residual_channels
        self.dilated = CausalConv1d(r, 2 * r, config.kernel_size, dilation)
        self.condition = nn.Conv1d(config.condition_channels, 2 * r, 1)
        # Per-sample, unlike the per-frame conditioning; added to the same bias.
        self.excitation = (nn.Conv1d(config.excitation_channels, 2 * r, 1, bias=False)
                           if config.excitation_channels else None)
        self.residual = nn.Conv1d(r, r, 1)
        self.skip = nn.Conv1d(r, config.skip_channels, 1)

    def gate(self, d):
        sigmoid_half, tanh_half = d.chunk(2, dim=1)
        return torch.sigmoid(sigmoid_half) * torch.tanh(tanh_half)

    def forward(self, h, condition_bias, excitation=None):
        """h [B, R, T]; condition_bias [B, 2R, T] (this layer's projection of Z, already upsampled);
        excitation [B, E, T] when the model has one."""
        d = self.dilated(h) + condition_bias
        if self.excitation is not None:
            d = d + self.excitation(excitation)
        g = self.gate(d)
        return h + self.residual(g), self.skip(g)

    def step(self, h_t, queue, t, condition_bias_t, excitation_t=None):
        """One sample of `forward`: h_t [B, R], condition_bias_t [B, 2R], excitation_t [B, E]."""
        d = self.dilated.step(h_t, queue, t) + condition_bias_t
        if self.excitation is not None:
            d = d + pointwise(self.excitation, excitation_t)
        g = self.gate(d)
        return h_t + pointwise(self.residual, g), pointwise(self.skip, g)


class WaveNetDecoder(nn.Module):
    """Causal WaveNet whose every layer is biased by a 1x1 projection of the conditioning (Z, optional pitch)."""

    def __init__(self, config: WaveNetConfig):
        super().__init__()
        r, s = config.residual_channels, config.skip_channels
        self.config = config
        self.start = CausalConv1d(1, r, config.kernel_size)
        self.skip_start = nn.Conv1d(r, s, 1)
        self.layers = nn.ModuleList(
            DecoderLayer(config, 2 ** (i % config.decoder_cycle)) for i in range(config.decoder_layers))
        self.out1 = nn.Conv1d(s, s, 1)
        self.condition_out = nn.Conv1d(config.condition_channels, s, 1)
        self.logits = nn.Conv1d(s, config.quantization_channels, 1)

    def condition_biases(self, condition: torch.Tensor) -> list[torch.Tensor]:
        """Per-frame biases, one [B, C, frames] tensor per layer plus one for the output stage."""
        return [layer.condition(condition) for layer in self.layers] + [self.condition_out(condition)]

    def output(self, skip_sum, out_bias):
        return self.logits(F.relu(self.out1(F.relu(skip_sum)) + out_bias))

    def forward(self, x_scaled: torch.Tensor, condition: torch.Tensor, excitation=None) -> torch.Tensor:
        """x_scaled [B, 1, T] (mu-law / 128), condition [B, C, frames] (, excitation [B, E, T]) -> logits
        [B, 256, T]."""
        # Shift right by one sample so the prediction for sample t sees only samples < t.
        x = F.pad(x_scaled, (1, 0))[:, :, :-1]
        upsample = lambda b: b.repeat_interleave(self.config.hop_length, dim=-1)[:, :, : x.shape[-1]]
        *layer_biases, out_bias = self.condition_biases(condition)
        h = self.start(x)
        skip_sum = self.skip_start(h)
        for layer, bias in zip(self.layers, layer_biases):
            h, skip = layer(h, upsample(bias), excitation)
            skip_sum = skip_sum + skip
        return self.output(skip_sum, upsample(out_bias))

    # Incremental inference (generate.py drives it one sample at a time).
    def init_state(self, condition: torch.Tensor) -> "DecoderState":
        batch = condition.shape[0]
        biases = [b.transpose(1, 2).contiguous() for b in self.condition_biases(condition)]  # [B, F, C] each
        convs = [self.start] + [layer.dilated for layer in self.layers]
        queues = [conv.init_queue(batch, condition.device, condition.dtype) for conv in convs]
        return DecoderState(biases, queues)

    def step(self, x_t: torch.Tensor, state: "DecoderState", t: int, excitation_t=None) -> torch.Tensor:
        """Logits [B, 256] for sample t, given the previous sample x_t [B] (mu-law / 128), the cache and
        (when the model has one) the excitation at t [B, E]."""
        frame = t // self.config.hop_length
        *layer_biases, out_bias = (b[:, frame] for b in state.biases)
        h = self.start.step(x_t.unsqueeze(-1), state.queues[0], t)
        skip_sum = pointwise(self.skip_start, h)
        for layer, queue, bias in zip(self.layers, state.queues[1:], layer_biases):
            h, skip = layer.step(h, queue, t, bias, excitation_t)
            skip_sum = skip_sum + skip
        return self.output(skip_sum.unsqueeze(-1), out_bias.unsqueeze(-1))[:, :, 0]


@dataclass
class DecoderState:
    biases: list  # per layer (and output stage): conditioning bias per frame [B, frames, C]
    queues: list  # per causal conv: circular queue of past inputs [B, C_in, (k-1)d]


class WaveNetAutoencoder(nn.Module):
    def __init__(self, config: WaveNetConfig):
        super().__init__()
        self.config = config
        self.encoder = TemporalEncoder(config)
        self.decoder = WaveNetDecoder(config)

    @staticmethod
    def scale_input(audio: torch.Tensor) -> torch.Tensor:
        """Audio in [-1, 1] [B, T] -> the network's input: 8-bit mu-law code / 128, [B, 1, T]."""
        return (mu_law_encode(audio).to(audio.dtype) / 128.0).unsqueeze(1)

    def encode(self, audio: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Audio [B, T] -> Z [B, T // hop, latent], for inference (no gradients; the fast encoder path, its residual
        stack in `dtype`)."""
        return self.encoder.infer(self.scale_input(audio), dtype).transpose(1, 2)

    def conditioning(self, z: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Z [B, F, latent] (+ MIDI pitch [B]) -> decoder conditioning [B, latent (+ pitch classes), F]."""
        if self.config.pitch_classes:
            if pitch is None:
                raise ValueError("This model is pitch-conditioned: give the MIDI pitch of each note.")
            one_hot = F.one_hot(pitch.long(), self.config.pitch_classes).to(z.dtype)
            z = torch.cat([z, one_hot.unsqueeze(1).expand(-1, z.shape[1], -1)], dim=-1)
        return z.transpose(1, 2)

    def excitation(self, pitch: torch.Tensor, phase: torch.Tensor) -> torch.Tensor | None:
        """The decoder's excitation [B, E, T] for a fundamental phase [B, T]; None when the model has none."""
        c = self.config
        return excitation(phase, pitch, c.excitation_harmonics, c.sample_rate) if c.excitation_harmonics else None

    def decode_logits(self, audio, z, pitch=None, phase=None):
        """Teacher-forced decoder pass: logits [B, 256, T] of each sample given the true past and Z.

        With an excitation, its phase [B, T] defaults to the one measured on `audio`'s fundamental.
        """
        drive = None
        if self.config.excitation_harmonics:
            if phase is None:
                phase = fundamental_phase(audio, pitch, self.config.sample_rate)
            drive = self.excitation(pitch, phase).to(audio.dtype)
        return self.decoder(self.scale_input(audio), self.conditioning(z, pitch), drive)

    def forward(self, audio: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        z = self.encoder(self.scale_input(audio)).transpose(1, 2)
        return self.decode_logits(audio, z, pitch)

    def loss(self, audio: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy (nats) of the 256-way mu-law prediction of every sample."""
        target = mu_law_encode(audio).long() + 128
        return F.cross_entropy(self(audio, pitch), target)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def decoder_flops_per_sample(config: WaveNetConfig) -> int:
    """Multiply-adds x2 of one incremental decoder step (conditioning biases precomputed per frame)."""
    r, s, k, q = config.residual_channels, config.skip_channels, config.kernel_size, config.quantization_channels
    per_layer = (k * r + config.excitation_channels) * 2 * r + r * r + r * s
    macs = k * r + r * s + config.decoder_layers * per_layer + s * s + s * q
    return 2 * macs


# --- beyond the paper: the harmonic excitation of a pitch-conditioned decoder (see the module docstring) ---------

def steady_phase(pitch: torch.Tensor, start: int, length: int, sample_rate: int) -> torch.Tensor:
    """Phase [B, length] (radians, float64) of a fundamental at each note's MIDI pitch, 0 at sample 0."""
    t = torch.arange(start, start + length, dtype=torch.float64, device=pitch.device)
    cycles = torch.remainder(midi_to_hz(pitch)[:, None] * t / sample_rate, 1.0)
    return 2 * math.pi * cycles


def fundamental_phase(audio: torch.Tensor, pitch: torch.Tensor, sample_rate: int, periods: int = 4):
    """Phase [B, T] (radians, float64) of each note's own fundamental near its MIDI pitch.

    The note is shifted down by f0 (heterodyned) and averaged over a window of `periods` periods centred on each
    sample, which keeps the fundamental's slowly varying phase offset and cancels every harmonic.
    """
    batch, length = audio.shape
    f0 = midi_to_hz(pitch)
    phase = steady_phase(pitch, 0, length, sample_rate)
    baseband = audio.double() * torch.polar(torch.ones_like(phase), -phase)
    summed = F.pad(torch.cumsum(baseband, dim=1), (1, 0))
    half = torch.round(periods * sample_rate / f0 / 2).long().clamp(min=1)[:, None]
    t = torch.arange(length, device=audio.device)[None, :]
    lower, upper = (t - half).clamp(min=0), (t + half).clamp(max=length)
    offset = summed.gather(1, upper) - summed.gather(1, lower)
    return phase + torch.angle(offset)


def excitation(phase: torch.Tensor, pitch: torch.Tensor, harmonics: int, sample_rate: int) -> torch.Tensor:
    """cos and sin of harmonics 1..H of the phase [B, T] -> [B, 2H, T] float32; harmonics at or above the
    Nyquist frequency are left out (zero)."""
    k = torch.arange(1, harmonics + 1, dtype=torch.float64, device=phase.device)
    audible = (k[None, :] * midi_to_hz(pitch)[:, None] < sample_rate / 2)[:, :, None]
    angles = k[None, :, None] * phase[:, None, :]
    return (torch.cat([torch.cos(angles), torch.sin(angles)], dim=1) * audible.repeat(1, 2, 1)).float()
