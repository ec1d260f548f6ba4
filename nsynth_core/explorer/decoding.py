"""One decoding interface for the three decoders: Z and the MIDI pitch in, audio out, and what that costs here.

The app, the command line and the evaluation hold a `Decoding` and never ask which kind of model is behind it:
- `WaveNetDecoding`: the paper's autoencoder, sampled one step at a time (fastgen's engine), its own encoder's Z;
- `SpectralDecoding`: the paper's baseline, a spectrogram and Griffin-Lim, its own encoder's Z [1984];
- `DDSPDecoding`: the harmonic-plus-noise decoder, which reads the WaveNet encoder's Z (`own_encoder` False).
Each measures its own speed once (`probe`) and predicts a decode's wall time (`estimate_seconds`) from it and from
the decodes that really ran (`record`).
"""

import time
from collections import deque

import numpy as np
import torch
from scipy.optimize import nnls

from nsynth_core.engine import fastgen, stopping
from nsynth_core.audio.core import NOTE_LENGTH
from nsynth_core.models.ddsp import DDSPDecoder
from nsynth_core.models.spectral import SpectralAutoencoder, spectrogram_to_audio
from nsynth_core.models.wavenet import WaveNetAutoencoder

SPEED_PROBE_SAMPLES = 256
DECODES_KEPT = 8  # recent decodes the estimate is fitted to: a few batch sizes, recent enough to follow the load
PROBE_BATCHES = (1, 16)  # the WaveNet's speed is measured at these numbers of notes
MIDI_PITCHES = range(128)


class DecodingError(ValueError):
    """Z, a pitch or a length that this decoder cannot take; the message says why."""


class Decoding:
    """How one model decodes: subclasses say what Z they read and how their cost grows."""

    label = "decoder"
    own_encoder = True  # whether its Z comes from the model's own encoder (else from a WaveNet's)
    note_length_only = False  # whether it decodes whole 4 s notes only
    uses_temperature = False
    griffin_lim_iters = 100  # phase reconstruction, for a decoder that makes spectrograms

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self._speed = None
        self._decodes = deque(maxlen=DECODES_KEPT)  # (notes, work, seconds) of decodes that really ran

    # --- what it takes
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def needs_pitch(self) -> bool:
        """Whether it is conditioned on pitch (the autoencoders optionally, by one-hot classes)."""
        return bool(self.model.config.pitch_classes)

    @property
    def pitch_range(self) -> range:
        return range(self.model.config.pitch_classes)

    def z_shape(self) -> str:
        """The shape of one note's Z, for messages."""
        return f"[frames, {self.model.config.latent_channels}]"

    def z_fits(self, z: np.ndarray) -> bool:
        return z.ndim == 2 and len(z) > 0 and z.shape[1] == self.model.config.latent_channels

    def samples_for(self, z_frames: int) -> int:
        """Audio samples decoded from a note's Z of this many frames."""
        return z_frames * self.model.config.hop_length

    def frames_for(self, length: int) -> int:
        """Z frames its encoder makes of `length` samples."""
        return length // self.model.config.hop_length

    def check_pitch(self, pitch: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if not self.needs_pitch:
            if pitch is not None:
                raise DecodingError(f"The {self.label} decoder is not conditioned on pitch; leave the pitch out.")
            return None
        if pitch is None:
            raise DecodingError(f"The {self.label} decoder needs each note's MIDI pitch.")
        pitch = torch.as_tensor(pitch).long().reshape(-1)
        low, high = self.pitch_range[0], self.pitch_range[-1]
        if len(pitch) != batch or pitch.min() < low or pitch.max() > high:
            raise DecodingError(f"The {self.label} decoder takes MIDI pitches from {low} to {high}.")
        return pitch.to(self.device)

    # --- decoding
    @torch.no_grad()
    def decode(self, z: torch.Tensor, pitch: torch.Tensor | None = None, length: int | None = None,
               temperature: float = 1.0, seed: int | None = 0, progress=None) -> np.ndarray:
        """Audio [B, length] (float32 numpy) of Z [B, ...]; length defaults to all that Z covers.
        progress(done, total) counts the samples of one note as the decode advances."""
        pitch = self.check_pitch(pitch, len(z))
        full = self.samples_for(z.shape[1]) if z.ndim == 3 else NOTE_LENGTH
        length = full if length is None else length
        if not 1 <= length <= full:
            raise DecodingError(f"This Z covers {full} samples; {length} cannot be decoded from it.")
        stopping.checkpoint()  # a long grid is decoded in several calls: each may be the first not wanted
        return self._decode(z.to(self.device), pitch, length, temperature, seed, progress)

    def _decode(self, z, pitch, length, temperature, seed, progress) -> np.ndarray:
        raise NotImplementedError

    def delay(self) -> str | None:
        """What a decode asked for now would first wait for, in words (None: it starts at once); the cost is
        not measured until then, as measuring would wait too."""
        return None

    # --- cost
    def probe(self) -> tuple[float, float]:
        """(seconds for the first note, seconds for each further note) per unit of `work(length)`, measured once."""
        if self._speed is None:
            self._speed = self._measure()
        return self._speed

    def _measure(self) -> tuple[float, float]:
        raise NotImplementedError

    def work(self, length: int) -> float:
        """How the cost grows with the length decoded (the unit `probe` measures in)."""
        return length / NOTE_LENGTH

    def estimate_seconds(self, n_notes: int, length: int) -> float:
        """Expected wall time of decoding n_notes notes of `length` samples in one batch on this machine."""
        first, each = self.speed()
        return self.work(length) * (first + each * (n_notes - 1))

    def record(self, n_notes: int, length: int, seconds: float) -> None:
        """A decode that really ran, for the next estimates: the probe is short and the machine's load changes."""
        self._decodes.append((n_notes, self.work(length), seconds))

    def speed(self) -> tuple[float, float]:
        """(seconds for the first note, for each further note) per unit of work: fitted to the recent decodes
        once they span two batch sizes (a short probe on a loaded machine can miss how the cost grows with the
        batch), the probe's rescaled to them before that."""
        first, each = self.probe()
        if not self._decodes:
            return first, each
        notes, work, seconds = (np.array(column, dtype=float) for column in zip(*self._decodes))
        seconds = np.maximum(seconds, 1e-9)
        if len(set(notes.tolist())) < 2:
            ratio = np.mean(seconds / np.maximum(work * (first + each * (notes - 1)), 1e-12))
            return first * ratio, each * ratio
        # Least relative error, neither term negative.
        fitted, _ = nnls(np.stack([work, work * (notes - 1)], axis=1) / seconds[:, None], np.ones(len(seconds)))
        return float(fitted[0]), float(fitted[1])

    def _timed(self, batch: int, length: int) -> float:
        z = torch.zeros(batch, *self._probe_z_shape(length))
        pitch = torch.full((batch,), 60) if self.needs_pitch else None
        start = time.perf_counter()
        self.decode(z, pitch, length, 1.0, 0, None)
        return time.perf_counter() - start

    def _probe_z_shape(self, length: int) -> tuple:
        hop = self.model.config.hop_length
        return -(-length // hop), self.model.config.latent_channels


class WaveNetDecoding(Decoding):
    label = "WaveNet"
    uses_temperature = True

    def __init__(self, model: WaveNetAutoencoder, dtype: torch.dtype = torch.float32):
        super().__init__(model)
        self.dtype = dtype  # of the engine's products (precision.decoder_dtype); float32 gives generate's samples

    def _decode(self, z, pitch, length, temperature, seed, progress):
        frames = -(-length // self.model.config.hop_length)
        return fastgen.generate_fastest(self.model, z[:, :frames].contiguous(), pitch=pitch, temperature=temperature,
                              seed=seed, progress=progress, length=length, dtype=self.dtype)

    def delay(self) -> str | None:
        return fastgen.build_delay(self.model)

    def work(self, length: int) -> float:
        return length  # one decoder step per sample

    def _measure(self):
        # At 16 notes the engine's cost per note has fallen to what a 9 x 9 grid pays. The first call at a batch
        # size pays one-off set-up costs (the conditioning convolutions' kernels for that shape); the difference
        # of two lengths leaves out what every decode pays once (conditioning, the engine's set-up).
        per_step = []
        for batch in PROBE_BATCHES:
            self._timed(batch, 8)
            longer = self._timed(batch, 8 + SPEED_PROBE_SAMPLES) - self._timed(batch, 8)
            per_step.append(max(longer / SPEED_PROBE_SAMPLES, 1e-6))
        return per_step[0], max(0.0, (per_step[1] - per_step[0]) / (PROBE_BATCHES[1] - PROBE_BATCHES[0]))


class SpectralDecoding(Decoding):
    label = "spectral baseline"
    note_length_only = True

    def z_shape(self) -> str:
        return f"[{self.model.config.latent_size}]"

    def z_fits(self, z: np.ndarray) -> bool:
        return z.shape == (self.model.config.latent_size,)

    def samples_for(self, z_frames: int) -> int:
        return NOTE_LENGTH

    def frames_for(self, length: int) -> int:
        return 1  # one Z per note

    def _decode(self, z, pitch, length, temperature, seed, progress):
        if progress:
            progress(0, length)
        audio = spectrogram_to_audio(self.model.decode_magnitude(z, pitch), self.griffin_lim_iters)[:, :length]
        if progress:
            progress(length, length)
        return audio

    def work(self, length: int) -> float:
        return 1.0  # Griffin-Lim runs on the whole spectrogram whatever is kept

    def _measure(self):
        self._timed(1, NOTE_LENGTH)  # the first call pays one-off set-up costs (measured: 3 s of 4.5 s)
        per_note = self._timed(1, NOTE_LENGTH)
        return per_note, per_note

    def _probe_z_shape(self, length: int) -> tuple:
        return (self.model.config.latent_size,)


class DDSPDecoding(Decoding):
    label = "DDSP"

    @property
    def own_encoder(self) -> bool:
        return self.model.encoder is not None  # the jointly trained variant; the shipped one reads a WaveNet's Z

    @property
    def needs_pitch(self) -> bool:
        return True  # its oscillators play the note's f0

    @property
    def pitch_range(self) -> range:
        return MIDI_PITCHES

    def samples_for(self, z_frames: int) -> int:
        return z_frames * self.model.config.latent_hop

    def frames_for(self, length: int) -> int:
        return length // self.model.config.latent_hop

    def _decode(self, z, pitch, length, temperature, seed, progress):
        frames = -(-length // self.model.config.latent_hop)
        if progress:
            progress(0, length)
        audio = self.model(z[:, :frames].float(), pitch, seed=seed or 0)[:, :length]
        if progress:
            progress(length, length)
        return audio.cpu().numpy().astype(np.float32)

    def _measure(self):
        self._timed(1, NOTE_LENGTH)  # first call: allocations and thread start-up
        one, four = self._timed(1, NOTE_LENGTH), self._timed(4, NOTE_LENGTH)
        return one, max(0.0, (four - one) / 3)

    def _probe_z_shape(self, length: int) -> tuple:
        return -(-length // self.model.config.latent_hop), self.model.config.latent_channels


DECODINGS = ((SpectralAutoencoder, SpectralDecoding), (DDSPDecoder, DDSPDecoding))  # a WaveNet: decoding_for


def decoding_for(model: torch.nn.Module, wavenet_dtype: torch.dtype = torch.float32) -> Decoding:
    """The decoding interface of a loaded model; a WaveNet's engine computes in `wavenet_dtype`."""
    if isinstance(model, WaveNetAutoencoder):
        return WaveNetDecoding(model, wavenet_dtype)
    for model_class, decoding_class in DECODINGS:
        if isinstance(model, model_class):
            return decoding_class(model)
    raise DecodingError(f"A {type(model).__name__} is not a decoder of this project.")


def describe_duration(seconds: float) -> str:
    if seconds < 60:
        return f"about {max(seconds, 1):.0f} s"
    return f"about {seconds / 60:.0f} min" if seconds < 3600 else f"about {seconds / 3600:.1f} h"
