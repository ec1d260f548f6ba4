"""A harmonic-plus-noise decoder on the WaveNet's Z, after DDSP (Engel et al., ICLR 2020). Not in the NSynth paper.

Z [frames, 16] and the MIDI pitch --network--> per control frame (125-250 Hz): a loudness, a distribution over
the harmonics of f0, and the magnitudes of a noise filter --synthesisers--> audio.

- core: the scaling of network outputs.
- synths: an additive bank of harmonics of f0 (phase by cumulative sum, partials at or above Nyquist silenced),
  white noise through a time-varying FIR filter (one zero-phase, windowed impulse response per frame, designed by
  frequency sampling), and an optional learnt reverb impulse response.
- the decoder: Z (normalised) and log-f0 through an MLP, a GRU and an MLP at Z's frame rate, whose last layer
  emits several control frames per Z frame.
- losses (ddsp_losses.py): a multi-resolution spectral loss (linear and log magnitudes) from auraloss, optionally
  with a log-mel term and a band-movement term (how much each mel band wavers from frame to frame, whatever its
  phase; the shipped decoder trains with it).

f0 is the pitch's equal-tempered frequency. By default it is constant over the note: the oscillators cannot drift
off pitch, and everything else about the sound (its spectrum over time, its noise) comes from Z. Two optional
heads (both zero-initialised, so a decoder trained without them starts out sounding exactly as before):
- pitch motion: a per-control-frame deviation of f0 in cents from Z and the pitch, bounded by tanh, applied
  before the oscillators (vibrato, glides); trained through the spectral loss and, supervised, on the notes'
  measured f0 contours;
- gates: gains at a finer rate than the controls (relu(1 + x), so exactly zero is reachable) on the harmonic
  and on the noise signal, for true silence and sharper onsets than a control frame allows.
The noise is drawn from a seeded generator, so decoding is deterministic.
"""

import math
from dataclasses import dataclass, replace

import librosa
import torch
import torch.nn as nn
import torch.nn.functional as F

from nsynth_core.audio.core import midi_to_hz
from nsynth_core.models.ddsp_losses import mel_loss, modulation_loss, motion_loss, motion_spread_loss, spectral_loss


@dataclass
class DDSPConfig:
    latent_channels: int = 16  # Z as the WaveNet encoder makes it
    latent_hop: int = 512  # samples per Z frame
    subframes: int = 8  # control frames per Z frame: the synthesisers run at 8 x 31.25 = 250 Hz
    hidden: int = 512
    mlp_layers: int = 3
    gru_channels: int = 512
    harmonics: int = 100
    noise_bands: int = 65  # filter magnitudes from 0 Hz to Nyquist; impulse responses of 2 * (bands - 1) taps
    reverb_samples: int = 16000  # learnt reverb impulse response; 0 = no reverb
    own_encoder: bool = False  # a jointly trained encoder (log-mel frames -> Z) instead of reading a given Z
    mel_bands: int = 64
    sample_rate: int = 16000
    mel_loss_weight: float = 0.0  # a log-mel term beside the spectral loss, for the bands the ear resolves finely
    modulation_loss_weight: float = 0.0  # how much each mel band wavers from frame to frame, whatever its phase
    f0_deviation_cents: float = 0.0  # bound of the per-frame f0 deviation; 0 = a steady f0 (no deviation head)
    f0_loss_weight: float = 0.0  # L1 of the deviation against the note's measured motion, per 100 cents
    # The deviation head also reads this many Z frames around each frame (0 = only the stack's causal features):
    # a vibrato's phase shows in Z's neighbours, not in a GRU that has only heard the past.
    motion_context_frames: int = 0
    # |spread of the deviation - spread of the measured motion| per 100 cents over voiced frames, whatever the
    # phase: the phase-matched L1 alone shrinks a motion it cannot time towards none.
    motion_spread_weight: float = 0.0
    gate_subframes: int = 0  # fine gains per Z frame on the harmonic and the noise signal; 0 = none
    # Bound in cents of a vibrato oscillator's depth beside the deviation (0 = none). With it the per-frame
    # deviation is smoothed to glides, so the wavering comes from a sine at a rate the head chooses: unsmoothed,
    # the spread term is met by frame-to-frame jitter that no pitch tracker hears.
    vibrato_cents: float = 0.0

    @staticmethod
    def preset(name: str) -> "DDSPConfig":
        if name not in PRESETS:
            raise ValueError(f"Unknown DDSP preset {name!r}; choose one of {sorted(PRESETS)}.")
        return replace(PRESETS[name])

    @property
    def frame_hop(self) -> int:
        """Samples per control frame."""
        return self.latent_hop // self.subframes

    def __post_init__(self):
        if self.latent_hop % self.subframes or self.frame_hop % 2:
            raise ValueError(f"{self.subframes} subframes do not split a Z frame of {self.latent_hop} samples "
                             f"into even hops.")
        if self.gate_subframes and self.latent_hop % self.gate_subframes:
            raise ValueError(f"gate_subframes {self.gate_subframes} does not divide a Z frame of "
                             f"{self.latent_hop} samples.")
        if self.motion_context_frames and (self.motion_context_frames % 2 == 0 or not self.f0_deviation_cents):
            raise ValueError(f"motion_context_frames must be odd and needs f0_deviation_cents, got "
                             f"{self.motion_context_frames}.")
        if not 0 <= self.f0_deviation_cents <= 1200:
            raise ValueError(f"f0_deviation_cents must be from 0 to 1200, got {self.f0_deviation_cents:g}.")
        if self.vibrato_cents and not self.f0_deviation_cents:
            raise ValueError("vibrato_cents needs f0_deviation_cents (the vibrato is added to the deviation).")
        if not 0 <= self.vibrato_cents <= 200:
            raise ValueError(f"vibrato_cents must be from 0 to 200, got {self.vibrato_cents:g}.")


PRESETS = {
    # DDSP's autoencoder sizes: 512-wide stacks of three layers, a 512-unit GRU, 100 harmonics, 65 noise bands.
    "paper": DDSPConfig(),
    # Quick on two CPU cores (a 4 s note in milliseconds). No reverb: the SoundFont notes are rendered dry.
    "cpu-small": DDSPConfig(hidden=256, mlp_layers=2, gru_channels=256, subframes=4, harmonics=64,
                            reverb_samples=0),
}


# ------------------------------------------------------------------------------------------------- core

def exp_sigmoid(x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0, threshold: float = 1e-7):
    """DDSP's positive output scaling: max_value * sigmoid(x) ** ln(exponent) + threshold (a soft exponential)."""
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


# ----------------------------------------------------------------------------------------------- synths

def harmonic_synth(f0: torch.Tensor, amplitudes: torch.Tensor, hop: int, sample_rate: int,
                   cosine_amplitudes: torch.Tensor | None = None) -> torch.Tensor:
    """Sum of harmonics k * f0 (k = 1..K) of a steady fundamental, each at its own amplitude per frame (and, given
    `cosine_amplitudes`, plus each harmonic's cosine at those: what the gliding synthesiser draws with).

    f0 [B] Hz; amplitudes [B, F, K], frame i centred on sample i * hop + (hop - 1) / 2, interpolated linearly
    between frame centres (held before the first and after the last) -> audio [B, F * hop]. Harmonics at or
    above Nyquist are silenced.

    Between two frame centres every harmonic is a + s * (b - a) times sin(k * (phase at the segment's start +
    w t)), t = 0..hop-1: with sin(x + y) = sin x cos y + cos x sin y, a whole note is four matrix products of
    per-segment coefficients with one hop of cos / sin of the harmonics, rather than K sines per sample.
    """
    if hop % 2:
        raise ValueError(f"The harmonic synthesiser needs an even hop, not {hop}.")
    batch, frames, harmonics = amplitudes.shape
    k = torch.arange(1, harmonics + 1, device=f0.device, dtype=torch.float64)
    f0 = f0.double()
    audible = (k * f0[:, None] < sample_rate / 2).to(amplitudes.dtype)[:, None, :]

    def segments_of(amplitudes):  # (start, slope) of F + 1 segments, the first starting half a hop early
        held = torch.cat([amplitudes[:, :1], amplitudes, amplitudes[:, -1:]], dim=1) * audible  # [B, F + 2, K]
        return held[:, :-1], held[:, 1:] - held[:, :-1]

    # Phase of the fundamental (in cycles) at each segment's first sample, segment j starting at j * hop - hop / 2:
    # a cumulative sum of per-segment advances, in float64 and wrapped so a long note stays in tune.
    advance = (f0 * hop / sample_rate)[:, None].expand(-1, frames + 1)
    cycles = torch.remainder(torch.cumsum(advance, dim=1) - 1.5 * advance, 1.0)
    segment_phase = 2 * math.pi * torch.remainder(cycles[..., None] * k, 1.0)  # [B, F + 1, K]
    offset = torch.arange(hop, device=f0.device, dtype=torch.float64)
    within = 2 * math.pi * torch.remainder(f0[:, None, None] * k[None, :, None] * offset / sample_rate, 1.0)
    dtype = amplitudes.dtype
    cos_start, sin_start = torch.cos(segment_phase).to(dtype), torch.sin(segment_phase).to(dtype)
    cos_within, sin_within = torch.cos(within).to(dtype), torch.sin(within).to(dtype)  # [B, K, hop]
    fraction = ((offset + 0.5) / hop).to(dtype)  # where each sample lies between the two frame centres

    def harmonic_sum(coefficients):  # [B, F + 1, K] -> [B, F + 1, hop]
        return torch.bmm(coefficients * sin_start, cos_within) + torch.bmm(coefficients * cos_start, sin_within)

    def cosine_sum(coefficients):  # cos(x + y) = cos x cos y - sin x sin y
        return torch.bmm(coefficients * cos_start, cos_within) - torch.bmm(coefficients * sin_start, sin_within)

    start, slope = segments_of(amplitudes)
    segments = harmonic_sum(start) + harmonic_sum(slope) * fraction
    if cosine_amplitudes is not None:
        start, slope = segments_of(cosine_amplitudes)
        segments = segments + cosine_sum(start) + cosine_sum(slope) * fraction
    return segments.reshape(batch, -1)[:, hop // 2: hop // 2 + frames * hop]


def upsample(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """[B, F, C] per frame -> [B, F * hop, C] per sample, linear between frame centres (i * hop + (hop - 1) / 2),
    held before the first centre and after the last: the harmonic synthesiser's own interpolation."""
    return F.interpolate(frames.transpose(1, 2), scale_factor=hop, mode="linear",
                         align_corners=False).transpose(1, 2)


# A glide is what is left of the deviation after a moving average of this length twice (a triangle twice as long):
# a vibrato's few hertz are gone from it, a pitch that settles after the attack is kept.
GLIDE_SMOOTHING_S = 0.1
VIBRATO_RATES_HZ = (3.0, 9.0)  # the vibrato head's range; it starts in the middle


def glide(cents: torch.Tensor, control_rate: float) -> torch.Tensor:
    """cents [B, F] per control frame, smoothed: two passes of a moving average of GLIDE_SMOOTHING_S (the ends
    held)."""
    width = max(1, round(GLIDE_SMOOTHING_S * control_rate)) | 1
    smoothed = cents[:, None]
    for _ in range(2):
        smoothed = F.avg_pool1d(F.pad(smoothed, (width // 2, width // 2), mode="replicate"), width, stride=1)
    return smoothed[:, 0]


def vibrato_rate(raw: torch.Tensor) -> torch.Tensor:
    """A network output -> a vibrato rate in Hz within VIBRATO_RATES_HZ (0 -> the middle)."""
    low, high = VIBRATO_RATES_HZ
    return low + (high - low) * torch.sigmoid(raw)


def vibrato(depth: torch.Tensor, rate: torch.Tensor, subframes: int, control_rate: float) -> torch.Tensor:
    """depth [B, frames] cents and rate [B, frames] Hz per Z frame -> depth * sin(phase) [B, frames * subframes]
    per control frame, both interpolated between frame centres and the phase running from 0 at the note's start."""
    depth, rate = upsample(torch.stack([depth, rate], dim=-1), subframes).unbind(-1)
    phase = 2 * math.pi * (torch.cumsum(rate, dim=1) - rate) / control_rate
    return depth * torch.sin(phase)


# Samples between the phase-deviation anchors of the gliding synthesiser (1 kHz at 16 kHz).
GLIDE_HOP = 16


def gliding_harmonic_synth(f0: torch.Tensor, cents: torch.Tensor, amplitudes: torch.Tensor, hop: int,
                           sample_rate: int) -> torch.Tensor:
    """harmonic_synth for an f0 that moves: f0 [B] Hz times 2 ** (cents / 1200), cents [B, F] per frame
    (interpolated like the amplitudes).

    Harmonic k is the steady one's phase k phi plus k times the fundamental's accumulated phase deviation delta:
    sin(k phi + k delta) = sin(k phi) + (cos(k delta) - 1) sin(k phi) + sin(k delta) cos(k phi). delta moves slowly
    beside phi, so the steady synthesiser draws the last two terms from the amplitudes times cos(k delta) - 1 and
    sin(k delta) given every GLIDE_HOP samples: passes of matrix products rather than K sines per sample (several
    times cheaper to train), and exactly the steady note where the deviation is 0. A harmonic is silent wherever
    it lies at or above Nyquist.
    """
    if hop % GLIDE_HOP:
        raise ValueError(f"The gliding synthesiser needs a hop that is a multiple of {GLIDE_HOP}, not {hop}.")
    batch, frames, harmonics = amplitudes.shape
    k = torch.arange(1, harmonics + 1, device=f0.device, dtype=torch.float64)
    f0 = f0.double()
    ratio = torch.exp2(upsample(cents.double()[..., None], hop)[..., 0] / 1200)  # [B, T]
    advance = f0[:, None] * (ratio - 1) / sample_rate  # the deviation's cycles per sample
    deviation = (torch.cumsum(advance, dim=1) - advance).reshape(batch, -1, GLIDE_HOP)  # 0 at sample 0
    # Each anchor sits on its frame's centre, sample i * GLIDE_HOP + (GLIDE_HOP - 1) / 2.
    middle = slice(GLIDE_HOP // 2 - 1, GLIDE_HOP // 2 + 1)
    anchor_deviation = deviation[..., middle].mean(-1)
    anchor_f0 = f0[:, None] * ratio.reshape(batch, -1, GLIDE_HOP)[..., middle].mean(-1)
    angle = 2 * math.pi * torch.remainder(anchor_deviation[..., None] * k, 1.0)  # [B, F x hop / GLIDE_HOP, K]
    fine = upsample(amplitudes, hop // GLIDE_HOP)
    audible = (anchor_f0[..., None] * k < sample_rate / 2).to(fine.dtype)
    # The steady note plus what the deviation changes, so that no deviation gives the steady note exactly (where
    # the deviation lifts a harmonic past Nyquist, the change cancels it).
    steady = harmonic_synth(f0, amplitudes, hop, sample_rate)
    return steady + harmonic_synth(f0, fine * (audible * torch.cos(angle) - 1).to(fine.dtype), GLIDE_HOP,
                                   sample_rate, cosine_amplitudes=fine * (audible * torch.sin(angle)).to(fine.dtype))


def noise_impulse_responses(magnitudes: torch.Tensor) -> torch.Tensor:
    """Frequency sampling: magnitudes [B, F, bands] (0 Hz .. Nyquist) -> zero-phase FIRs [B, F, 2 (bands - 1)],
    centred and Hann-windowed (the window trades a little frequency resolution for no ripple)."""
    taps = 2 * (magnitudes.shape[-1] - 1)
    impulse = torch.fft.irfft(magnitudes.to(torch.complex64), n=taps)
    impulse = torch.roll(impulse, taps // 2, dims=-1)  # zero phase -> causal with a delay of taps // 2
    return impulse * torch.hann_window(taps, periodic=False, device=magnitudes.device)


def filtered_noise(magnitudes: torch.Tensor, hop: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform white noise in [-1, 1], each hop of it filtered by its frame's FIR (magnitudes [B, F, bands]),
    overlap-added: [B, F * hop]. The last frame's filter tail is cut, as is the note."""
    batch, frames, _ = magnitudes.shape
    impulse = noise_impulse_responses(magnitudes)
    taps = impulse.shape[-1]
    # One noise signal for the whole batch: a note's noise depends on the seed alone, not on its batch
    # position, and a shorter decode is a prefix of a longer one.
    noise = (torch.rand(frames, hop, generator=generator, device=magnitudes.device) * 2 - 1).expand(batch, -1, -1)
    n_fft = 1 << (hop + taps - 1 - 1).bit_length()
    filtered = torch.fft.irfft(torch.fft.rfft(noise, n_fft) * torch.fft.rfft(impulse, n_fft), n_fft)
    filtered = filtered[..., : hop + taps - 1]
    # Overlap-add the frames, hop apart; then drop the filter's delay so noise and harmonics line up.
    out = F.fold(filtered.transpose(1, 2), output_size=(1, (frames - 1) * hop + hop + taps - 1),
                 kernel_size=(1, hop + taps - 1), stride=(1, hop))[:, 0, 0]
    return out[:, taps // 2: taps // 2 + frames * hop]


def reverb(audio: torch.Tensor, impulse: torch.Tensor) -> torch.Tensor:
    """audio [B, T] plus its convolution with a learnt impulse response [L] (whose tap 0 is the dry path)."""
    n_fft = 1 << (audio.shape[-1] + impulse.shape[-1] - 1).bit_length()
    wet = torch.fft.irfft(torch.fft.rfft(audio, n_fft) * torch.fft.rfft(impulse, n_fft), n_fft)
    return audio + wet[..., : audio.shape[-1]]


# --------------------------------------------------------------------------------------------- decoder

def mlp(in_channels: int, hidden: int, layers: int) -> nn.Sequential:
    """DDSP's fc stack: Dense -> LayerNorm -> leaky ReLU, `layers` times."""
    modules = []
    for i in range(layers):
        modules += [nn.Linear(in_channels if i == 0 else hidden, hidden), nn.LayerNorm(hidden), nn.LeakyReLU()]
    return nn.Sequential(*modules)


class MelEncoder(nn.Module):
    """The optional jointly trained encoder: log-mel frames at the Z frame rate -> GRU -> Z [B, frames, latent]."""

    def __init__(self, config: DDSPConfig):
        super().__init__()
        self.hop = config.latent_hop
        self.n_fft = 2 * config.latent_hop
        mel = librosa.filters.mel(sr=config.sample_rate, n_fft=self.n_fft, n_mels=config.mel_bands)
        self.register_buffer("mel_filters", torch.from_numpy(mel).float(), persistent=False)
        self.input = mlp(config.mel_bands, config.hidden, 1)
        self.gru = nn.GRU(config.hidden, config.hidden, batch_first=True)
        self.out = nn.Linear(config.hidden, config.latent_channels)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.shape[-1] // self.hop
        window = torch.hann_window(self.n_fft, device=audio.device)
        spectrum = torch.stft(audio, self.n_fft, self.hop, window=window, return_complex=True).abs()
        log_mel = torch.log(self.mel_filters @ spectrum + 1e-5).transpose(1, 2)[:, :frames]
        return self.out(self.gru(self.input(log_mel))[0])


def zero_linear(in_channels: int, out_channels: int) -> nn.Linear:
    """A dense layer whose output is 0 until it is trained."""
    layer = nn.Linear(in_channels, out_channels)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


ADDED_HEADS = ("to_f0_deviation.", "motion_context.", "to_gates.", "to_vibrato.")  # weights a checkpoint from before them may lack


class DDSPDecoder(nn.Module):
    """Z [B, frames, latent] + MIDI pitch [B] -> audio [B, frames * latent_hop]."""

    def __init__(self, config: DDSPConfig):
        super().__init__()
        self.config = config
        c = config
        self.encoder = MelEncoder(c) if c.own_encoder else None
        # Z's scale is the encoder's: normalised per channel by statistics of the training notes (set once).
        self.register_buffer("z_mean", torch.zeros(c.latent_channels))
        self.register_buffer("z_std", torch.ones(c.latent_channels))
        self.input = mlp(c.latent_channels + 1, c.hidden, c.mlp_layers)
        self.gru = nn.GRU(c.hidden, c.gru_channels, batch_first=True)
        self.output = mlp(c.gru_channels + c.hidden, c.hidden, c.mlp_layers)
        self.to_controls = nn.Linear(c.hidden, c.subframes * (1 + c.harmonics + c.noise_bands))
        # The added heads start at zero: a deviation of 0 cents and gains of exactly 1.
        context = c.hidden if c.motion_context_frames else 0
        self.motion_context = (nn.Conv1d(c.latent_channels + 1, context, c.motion_context_frames,
                                         padding=c.motion_context_frames // 2) if context else None)
        self.to_f0_deviation = zero_linear(c.hidden + context, c.subframes) if c.f0_deviation_cents else None
        self.to_vibrato = zero_linear(c.hidden + context, 2) if c.vibrato_cents else None  # depth, rate
        self.to_gates = zero_linear(c.hidden, 2 * c.gate_subframes) if c.gate_subframes else None
        if c.reverb_samples:
            # A small decaying noise to start from; tap 0 stays 0 (the dry path is added separately).
            decay = torch.exp(-torch.arange(c.reverb_samples) / (0.1 * c.sample_rate))
            self.reverb_impulse = nn.Parameter(torch.randn(c.reverb_samples) * 1e-3 * decay)

    @staticmethod
    def log_f0(pitch: torch.Tensor) -> torch.Tensor:
        """MIDI pitch -> a network input in about [-1, 1] (MIDI 0..127 spans it linearly, i.e. log f0)."""
        return (pitch.float() - 64.0) / 64.0

    def controls(self, z: torch.Tensor, pitch: torch.Tensor) -> dict:
        """The synthesisers' inputs: f0 [B] (with the deviation head, its deviation in cents [B, F] beside it),
        and per control frame harmonic amplitudes [B, F, K] and noise filter magnitudes
        [B, F, bands], F = Z frames x subframes; with gates, gains [B, frames x gate_subframes, 2] (harmonic,
        noise).

        The stack runs at Z's own frame rate (a GRU over 125 frames for 4 s, not thousands) and its last layer
        emits `subframes` control frames per Z frame, so attacks can be sharper than a Z frame.
        """
        c = self.config
        batch, frames, _ = z.shape
        z = (z - self.z_mean) / self.z_std
        f0_input = self.log_f0(pitch)[:, None, None].expand(-1, frames, 1)
        x = self.input(torch.cat([z, f0_input], dim=-1))
        x = self.output(torch.cat([self.gru(x)[0], x], dim=-1))
        raw = self.to_controls(x).reshape(batch, frames * c.subframes, -1)
        f0 = midi_to_hz(pitch.double())
        # A loudness times a distribution over the harmonics that can be heard at this f0.
        audible = (torch.arange(1, c.harmonics + 1, device=f0.device) * f0[:, None] < c.sample_rate / 2)
        distribution = exp_sigmoid(raw[..., 1: 1 + c.harmonics]) * audible[:, None, :].to(raw.dtype)
        distribution = distribution / distribution.sum(-1, keepdim=True).clamp(min=1e-7)
        controls = {"f0": f0,
                    "amplitudes": exp_sigmoid(raw[..., :1]) * distribution,
                    "noise": exp_sigmoid(raw[..., 1 + c.harmonics:] - 5.0)}  # starts quiet, as in DDSP
        if self.to_f0_deviation is not None:
            features = x
            if self.motion_context is not None:
                around = self.motion_context(torch.cat([z, f0_input], dim=-1).transpose(1, 2)).transpose(1, 2)
                features = torch.cat([x, F.gelu(around)], dim=-1)
            cents = c.f0_deviation_cents * torch.tanh(self.to_f0_deviation(features).reshape(batch, -1))
            if self.to_vibrato is not None:
                depth, rate = self.to_vibrato(features).unbind(-1)
                cents = glide(cents, c.sample_rate / c.frame_hop) + vibrato(
                    c.vibrato_cents * torch.tanh(depth), vibrato_rate(rate), c.subframes, c.sample_rate / c.frame_hop)
            controls["cents"] = cents
        if self.to_gates is not None:
            controls["gates"] = torch.relu(1 + self.to_gates(x).reshape(batch, frames * c.gate_subframes, 2))
        return controls

    def synthesize(self, controls: dict, seed: int = 0) -> torch.Tensor:
        c = self.config
        generator = torch.Generator(device=controls["noise"].device).manual_seed(seed)
        if "cents" in controls:
            harmonic = gliding_harmonic_synth(controls["f0"], controls["cents"], controls["amplitudes"],
                                              c.frame_hop, c.sample_rate)
        else:
            harmonic = harmonic_synth(controls["f0"], controls["amplitudes"], c.frame_hop, c.sample_rate)
        noise = filtered_noise(controls["noise"], c.frame_hop, generator)
        if "gates" in controls:
            gains = upsample(controls["gates"], c.latent_hop // c.gate_subframes)
            harmonic, noise = harmonic * gains[..., 0], noise * gains[..., 1]
        audio = harmonic + noise
        if c.reverb_samples:
            audio = reverb(audio, F.pad(self.reverb_impulse[1:], (1, 0)))
        return audio

    def forward(self, z: torch.Tensor, pitch: torch.Tensor, seed: int = 0) -> torch.Tensor:
        return self.synthesize(self.controls(z, pitch), seed)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """Z of audio [B, T] with the model's own encoder (only when it has one)."""
        if self.encoder is None:
            raise ValueError("This DDSP decoder reads the WaveNet encoder's Z; it has no encoder of its own.")
        return self.encoder(audio)

    def loss(self, audio: torch.Tensor, pitch: torch.Tensor, z: torch.Tensor | None = None,
             motion: torch.Tensor | None = None, voiced: torch.Tensor | None = None) -> torch.Tensor:
        """Multi-resolution spectral distance of the decoded note from `audio` [B, T], decoded from the given Z
        or, when the model has an encoder of its own, from that encoder's Z of `audio`; with the deviation head
        and `f0_loss_weight`, plus the L1 distance in cents (per 100) of the deviation from the note's measured
        pitch motion `motion` [B, frames] on its `voiced` frames (train/cache_f0.py)."""
        if self.encoder is not None:
            z = self.encode(audio)
        elif z is None:
            raise ValueError("This DDSP decoder reads the WaveNet encoder's Z: give the note's Z.")
        controls = self.controls(z, pitch)
        decoded = self.synthesize(controls)
        target = audio[:, : decoded.shape[-1]]
        loss = spectral_loss(decoded, target)
        if self.config.mel_loss_weight:
            loss = loss + self.config.mel_loss_weight * mel_loss(decoded, target)
        if self.config.modulation_loss_weight:
            loss = loss + self.config.modulation_loss_weight * modulation_loss(decoded, target)
        if "cents" in controls and motion is not None:
            if self.config.f0_loss_weight:
                loss = loss + self.config.f0_loss_weight * motion_loss(controls["cents"], motion, voiced) / 100
            if self.config.motion_spread_weight:
                loss = loss + self.config.motion_spread_weight * motion_spread_loss(controls["cents"], motion,
                                                                                     voiced) / 100
        return loss


def set_latent_statistics(model: DDSPDecoder, z: torch.Tensor) -> None:
    """Normalise Z by the per-channel mean and std of the training notes' Z [N, frames, latent]."""
    flat = z.reshape(-1, z.shape[-1]).float()
    model.z_mean.copy_(flat.mean(0))
    model.z_std.copy_(flat.std(0).clamp(min=1e-3))
