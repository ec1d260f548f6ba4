"""Fast WaveNet decoding: the sample loop of the incremental decoder (generate.py) run in compiled C++.

The engine (csrc/fastgen.cpp) is compiled on first use with the machine's C++ compiler for the machine's own
vector instructions, then cached by torch.utils.cpp_extension. It runs the very same weights and step as
`WaveNetDecoder.step`, with conditioning biases precomputed per frame and the batch split across threads, and
draws samples from the same uniforms as `generate`, so a seed gives the same audio from both engines.
`decode` uses it when it can and falls back to `generate` otherwise.
"""

import ctypes
import logging
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import torch
from torch.utils import cpp_extension

from .audio import mu_law_decode
from .generate import ProgressCallback, generate, generation_excitation, sampling_uniforms
from .wavenet import WaveNetAutoencoder

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "fastgen.cpp"
CHUNK = 1600  # samples per call into C++: progress is reported between calls (40 times for a 4 s note)
CHANNEL_MULTIPLE = 16  # the engine works on whole vector registers of channels
RETRY_EVERY = 20  # chunks between re-measurements of the thread count not in use

_build_lock = threading.Lock()
_library = None
_build_error = None


def load_library() -> ctypes.CDLL | None:
    """The compiled engine, building it on first use; None (with the reason in `build_error()`) if it cannot."""
    global _library, _build_error
    with _build_lock:
        if _library is None and _build_error is None:
            try:
                path = cpp_extension.load(
                    name="nsynth_fastgen", sources=[str(SOURCE)], is_python_module=False,
                    # -ffp-contract=fast lets the compiler fuse multiply-adds, which ISO C++ mode forbids.
                    extra_cflags=["-O3", "-march=native", "-ffp-contract=fast", "-pthread"],
                    extra_ldflags=["-pthread"])
                _library = _bind(ctypes.CDLL(path))
            except Exception as error:  # no compiler, no ninja, a failed build: all mean "use the reference"
                _build_error = f"the C++ engine could not be built ({type(error).__name__}: {error})"
    return _library


def build_error() -> str | None:
    return _build_error


def _bind(library: ctypes.CDLL) -> ctypes.CDLL:
    i64, f64, ptr = ctypes.c_int64, ctypes.c_double, ctypes.c_void_p
    library.fastgen_create.restype = ptr
    library.fastgen_create.argtypes = [i64] * 9 + [ptr] * 13
    library.fastgen_run.restype = None
    library.fastgen_run.argtypes = [ptr, i64, ptr, ptr, f64, i64, ptr, ptr]
    library.fastgen_free.restype = None
    library.fastgen_free.argtypes = [ptr]
    return library


def unavailable_reason(model: WaveNetAutoencoder) -> str | None:
    """Why the fast engine cannot decode with this model (None when it can); builds the engine if needed."""
    config = model.config
    parameter = next(model.parameters())
    if parameter.device.type != "cpu":
        return f"the model is on {parameter.device.type}, and the C++ engine runs on the CPU"
    if parameter.dtype != torch.float32:
        return f"the model's weights are {parameter.dtype}, and the C++ engine computes in float32"
    if config.quantization_channels != 256:
        return "the C++ engine decodes 8-bit mu-law (256 classes) only"
    if config.kernel_size < 2:
        return "the C++ engine needs causal convolutions of at least two taps"
    channels = (config.residual_channels, config.skip_channels)
    if any(c % CHANNEL_MULTIPLE for c in channels):
        return f"the C++ engine needs channel counts that are multiples of {CHANNEL_MULTIPLE}, not {channels}"
    return None if load_library() else build_error()


class FastDecoder:
    """The decoder's weights and cache for one batch of notes, decoded chunk by chunk in C++."""

    def __init__(self, model: WaveNetAutoencoder, z: torch.Tensor, pitch: torch.Tensor | None = None):
        reason = unavailable_reason(model)
        if reason:
            raise RuntimeError(f"Cannot use the fast decoder: {reason}.")
        decoder, config = model.decoder, model.config
        self.batch, self.frames = z.shape[0], z.shape[1]
        with torch.no_grad():
            *layer_biases, out_bias = decoder.condition_biases(model.conditioning(z.float(), pitch))
            # Per frame [.., F, C], with the bias of the conv each one is added to folded in.
            layer_bias = torch.stack([b.transpose(1, 2) + layer.dilated.bias
                                      for b, layer in zip(layer_biases, decoder.layers)])
            out_bias = out_bias.transpose(1, 2) + decoder.out1.bias
            matrix = lambda conv: conv.weight[:, :, 0].t()  # a 1x1 conv as an input-major [in, out] matrix
            # Dilated taps oldest first, as the rows of one [k * R, 2R] matrix, then the excitation's [E, 2R].
            taps = lambda layer: torch.cat(
                [layer.dilated.weight.permute(2, 1, 0).reshape(-1, layer.dilated.out_channels)]
                + ([] if layer.excitation is None else [matrix(layer.excitation)]))
            arrays = [
                decoder.start.weight[:, 0, :].t(), decoder.start.bias,
                matrix(decoder.skip_start), decoder.skip_start.bias,
                torch.stack([taps(layer) for layer in decoder.layers]),
                torch.stack([torch.cat([matrix(layer.residual), matrix(layer.skip)], dim=1)
                             for layer in decoder.layers]),
                torch.stack([torch.cat([layer.residual.bias, layer.skip.bias]) for layer in decoder.layers]),
                matrix(decoder.out1), matrix(decoder.logits), decoder.logits.bias,
                layer_bias, out_bias,
            ]
            arrays = [a.detach().float().contiguous() for a in arrays]
        dilations = torch.tensor([layer.dilated.dilation[0] for layer in decoder.layers], dtype=torch.int64)
        self._library = load_library()
        self._handle = self._library.fastgen_create(
            self.batch, self.frames, config.hop_length, config.residual_channels, config.skip_channels,
            config.quantization_channels, config.kernel_size, config.excitation_channels, len(decoder.layers),
            dilations.data_ptr(),
            *(a.data_ptr() for a in arrays))  # the engine copies everything it keeps
        weakref.finalize(self, self._library.fastgen_free, self._handle)
        self.quantization_channels, self.hop_length = config.quantization_channels, config.hop_length
        self._model, self._pitch = model, pitch
        self.decoded = 0  # samples of each note decoded so far

    def run(self, steps: int, uniforms: torch.Tensor | None = None, temperature: float = 1.0,
            logits: torch.Tensor | None = None, threads: int | None = None) -> torch.Tensor:
        """Mu-law codes [B, steps] of the next `steps` samples; greedy when `uniforms` [steps, B] is None.

        `logits`, a float32 tensor [steps, B, 256], receives each step's logits when given.
        """
        if uniforms is not None:
            uniforms = uniforms.float().contiguous()
            if uniforms.shape != (steps, self.batch):
                raise ValueError(f"Expected uniforms of shape {(steps, self.batch)}, not {tuple(uniforms.shape)}.")
        logits_shape = (steps, self.batch, self.quantization_channels)
        if logits is not None and (logits.shape != logits_shape or logits.dtype != torch.float32
                                   or not logits.is_contiguous()):
            raise ValueError(f"Expected a contiguous float32 tensor of shape {logits_shape} for the logits.")
        if self.decoded + steps > self.frames * self.hop_length:
            raise ValueError(f"Cannot decode past sample {self.frames * self.hop_length} from {self.frames} frames.")
        codes = torch.empty(self.batch, steps, dtype=torch.int64)
        threads = threads or torch.get_num_threads()
        drive = generation_excitation(self._model, self._pitch, self.decoded, steps)
        if drive is not None:
            drive = drive.permute(2, 0, 1).contiguous()  # [steps, B, E]
        self._library.fastgen_run(
            self._handle, steps, None if drive is None else drive.data_ptr(),
            None if uniforms is None else uniforms.data_ptr(), temperature, threads,
            codes.data_ptr(), None if logits is None else logits.data_ptr())
        self.decoded += steps
        return codes


class ThreadTuner:
    """Chooses the thread count chunk by chunk from measured speed.

    Threads split the batch, each streaming all the weights through its core's cache. On free cores two threads
    run twice as fast as one; when other work shares the cores they run slower (measured here: half the speed),
    as threads time-sliced on one core evict each other's weights. So both counts are timed, the faster is
    used, and the other is timed again now and then in case the load has changed.
    """

    def __init__(self, most: int):
        self.options = sorted({1, most})
        self.seconds_per_step: dict[int, float] = {}
        self.chunks = 0

    def choose(self) -> int:
        untried = [n for n in self.options if n not in self.seconds_per_step]
        if untried:
            return untried[0]
        ranked = sorted(self.options, key=self.seconds_per_step.get)
        return ranked[-1] if self.chunks % RETRY_EVERY == 0 else ranked[0]

    def record(self, threads: int, steps: int, seconds: float):
        self.seconds_per_step[threads] = seconds / steps
        self.chunks += 1


@torch.no_grad()
def fast_generate(model: WaveNetAutoencoder, z: torch.Tensor, pitch: torch.Tensor | None = None,
                  temperature: float = 1.0, seed: int | None = None, progress: ProgressCallback | None = None,
                  length: int | None = None, threads: int | None = None) -> np.ndarray:
    """`generate` (same arguments, same result) on the C++ engine; raises RuntimeError if it is unavailable.

    `threads` fixes the thread count; by default it is tuned between 1 and torch.get_num_threads() as it runs.
    """
    model.eval()
    batch, frames, _ = z.shape
    length = length or frames * model.config.hop_length
    if length > frames * model.config.hop_length:
        raise ValueError(f"Cannot decode {length} samples from {frames} frames of Z.")
    engine = FastDecoder(model, z.cpu(), None if pitch is None else pitch.cpu())
    uniforms = sampling_uniforms(length, batch, temperature, seed)
    tuner = ThreadTuner(min(batch, torch.get_num_threads()))
    codes = torch.empty(batch, length, dtype=torch.int64)
    for start in range(0, length, CHUNK):
        steps = min(CHUNK, length - start)
        chunk_threads = threads or tuner.choose()
        began = time.perf_counter()
        chunk_uniforms = None if uniforms is None else uniforms[start:start + steps]
        codes[:, start:start + steps] = engine.run(steps, chunk_uniforms, temperature, threads=chunk_threads)
        tuner.record(chunk_threads, steps, time.perf_counter() - began)
        if progress is not None:
            progress(start + steps, length)
    return mu_law_decode(codes.numpy()).astype(np.float32)


def decode(model: WaveNetAutoencoder, z: torch.Tensor, pitch: torch.Tensor | None = None,
           temperature: float = 1.0, seed: int | None = None, progress: ProgressCallback | None = None,
           length: int | None = None) -> np.ndarray:
    """Audio [B, length] from Z [B, frames, latent]: the fast engine when possible, else `generate`."""
    reason = unavailable_reason(model)
    engine = generate if reason else fast_generate
    if reason:
        log.warning("Decoding with the reference generator: %s.", reason)
    return engine(model, z, pitch=pitch, temperature=temperature, seed=seed, progress=progress, length=length)
