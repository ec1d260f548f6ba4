"""Fast WaveNet decoding: the sample loop of the incremental decoder (generate.py) run in compiled C++.

The engine (csrc/fastgen.cpp) is compiled with the machine's C++ compiler for the machine's own vector
instructions, once per source and machine: the app starts that in the background (`start_build`), and
`python -m nsynth_core.engine.fastgen` does it ahead of time. The library is kept in a cache folder of its own, which
later processes load without compiling. It runs the very same weights and step as `WaveNetDecoder.step`, with
conditioning biases precomputed per frame and the batch split across threads, and draws samples from the same
uniforms as `generate`, so a seed gives the same audio from both engines. `decode` uses it when it can and falls
back to `generate` otherwise, saying why once in the log. On a CPU with AVX512-BF16 it can also round its products'
inputs and weights to bfloat16 (sums stay float32): twice the work per instruction, and logits within about 1 % of
float32's, so the samples drawn are the same kind of note but no longer the reference's, sample for sample.
"""

import contextlib
import ctypes
import fcntl
import hashlib
import logging
import os
import platform
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import torch
from torch.utils import cpp_extension

from nsynth_core.audio.core import mu_law_decode
from nsynth_core.engine import stopping
from nsynth_core.engine.generate import ProgressCallback, generate, generation_excitation, sampling_uniforms
from nsynth_core.models.wavenet import WaveNetAutoencoder

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "fastgen.cpp"
LIBRARY_NAME = "nsynth_fastgen"
# -ffp-contract=fast lets the compiler fuse multiply-adds, which ISO C++ mode forbids.
CFLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-pthread"]
LDFLAGS = ["-pthread"]
BUILD_WAIT = 180  # s a decode waits for a build still running (one took 112 s with both cores loaded)
READY_FILE = "ready"  # names the library once its build has finished: from then on it is loaded, never rebuilt
BUILD_LOCK_FILE = "build.lock"  # flock'ed while building: the kernel releases it when the builder dies
TORCH_LOCK_FILE = "lock"  # torch's own build lock, which a killed build leaves behind and torch waits on forever
CHUNK = 1600  # samples per call into C++: progress is reported between calls (40 times for a 4 s note)
CHANNEL_MULTIPLE = 16  # the engine works on whole vector registers of channels
RETRY_EVERY = 20  # chunks between re-measurements of the thread count not in use


def build_directory(source: Path = SOURCE, root: str | Path | None = None) -> Path:
    """The engine's build folder, named by a digest of all the library depends on: checkouts with the same
    source share one build, a different source or flags never overwrite it. Under `root`, by default
    TORCH_EXTENSIONS_DIR or torch's cache folder (in XDG_CACHE_HOME when set), which outlive the process."""
    root = root or os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    inputs = (source.read_bytes(), CFLAGS, LDFLAGS, torch.__version__, _instruction_set())
    return Path(root) / f"{LIBRARY_NAME}-{hashlib.sha256(repr(inputs).encode()).hexdigest()[:16]}"


def _instruction_set() -> str:
    """This CPU's instruction-set extensions: -march=native compiles for them, so machines sharing a home
    folder need a build per kind of CPU."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return platform.machine() + next((line for line in cpuinfo if line.startswith("flags")), "")
    except OSError:
        return platform.machine()


def compiled_library(source: Path = SOURCE, root: str | Path | None = None) -> Path:
    """The engine's shared library in its build folder, compiled there first unless a build has finished."""
    directory = build_directory(source, root)
    if finished := _finished_build(directory):
        return finished
    directory.mkdir(parents=True, exist_ok=True)
    with _exclusive_build(directory):
        if finished := _finished_build(directory):  # built by the process this one waited for
            return finished
        torch_lock = directory / TORCH_LOCK_FILE
        if torch_lock.exists():  # no one else builds here while this process holds the folder
            log.warning("Removed the build lock that an interrupted build left in %s.", directory)
            torch_lock.unlink()
        log.info("Building the C++ engine in %s.", directory)
        started = time.perf_counter()
        library = Path(cpp_extension.load(
            name=LIBRARY_NAME, sources=[str(source)], extra_cflags=CFLAGS, extra_ldflags=LDFLAGS,
            build_directory=str(directory), is_python_module=False))
        ready = directory / READY_FILE
        ready.with_suffix(".part").write_text(library.name)
        ready.with_suffix(".part").replace(ready)  # a reader never sees half a name
        log.info("Built the C++ engine in %.1f s.", time.perf_counter() - started)
        return library


def _finished_build(directory: Path) -> Path | None:
    try:
        library = directory / (directory / READY_FILE).read_text()
    except FileNotFoundError:
        return None
    return library if library.is_file() else None


@contextlib.contextmanager
def _exclusive_build(directory: Path):
    """Holds `directory` for building, waiting (and saying for whom) while another process builds there."""
    with open(directory / BUILD_LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            log.warning("Waiting for process %s, which is building the C++ engine in %s.",
                        lock.read().strip() or "(unknown)", directory)
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield


class EngineBuild:
    """This process's one load of the engine: at once when a build has finished, else after building it in a
    background thread."""

    def __init__(self):
        self._guard = threading.Lock()
        self._started: float | None = None  # time.monotonic() of the start
        self._done = threading.Event()
        self.library: ctypes.CDLL | None = None
        self.error: str | None = None

    def start(self):
        with self._guard:
            if self._started is None:
                self._started = time.monotonic()
                if _finished_build(build_directory()):
                    self._run()  # milliseconds: no decode should wait, or be told to, for a cached load
                else:
                    threading.Thread(target=self._run, name="fastgen-build", daemon=True).start()

    def _run(self):
        try:
            self.library = _bind(ctypes.CDLL(str(compiled_library())))
        except Exception as error:  # no compiler, no ninja, a failed build: all mean "use the reference"
            self.error = f"the C++ engine could not be built ({type(error).__name__}: {error})"
            _warn_once(f"Decoding with the reference generator: {self.error}.")
        finally:
            self._done.set()

    def running(self) -> bool:
        """Whether a decode asked for now would wait for the build (started, unfinished, within BUILD_WAIT)."""
        return (self._started is not None and not self._done.is_set()
                and time.monotonic() < self._started + BUILD_WAIT)

    def finished(self) -> bool:
        """Whether the build has ended; starts it if needed, and waits for it until BUILD_WAIT s after its start."""
        self.start()
        if not self._done.is_set():
            _warn_once("Decoding waits for the C++ engine's build to finish.")
        return self._done.wait(max(0.0, self._started + BUILD_WAIT - time.monotonic()))


_engine = EngineBuild()
_warned: set[str] = set()


def _warn_once(message: str):
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def start_build():
    """Builds the engine, or loads it from the cache, in the background so that no decode has to."""
    _engine.start()


def load_library() -> ctypes.CDLL | None:
    """The compiled engine; None (with the reason in `build_error()`) if it cannot be built, or if its build
    is still running after BUILD_WAIT seconds."""
    return _engine.library if _engine.finished() else None


def build_error() -> str | None:
    if not _engine.finished():
        return f"the C++ engine's build has not finished after {BUILD_WAIT} s"
    return _engine.error


def _bind(library: ctypes.CDLL) -> ctypes.CDLL:
    i64, f64, ptr = ctypes.c_int64, ctypes.c_double, ctypes.c_void_p
    library.fastgen_create.restype = ptr
    library.fastgen_create.argtypes = [i64] * 10 + [ptr] * 13
    library.fastgen_run.restype = None
    library.fastgen_run.argtypes = [ptr, i64, ptr, ptr, f64, i64, ptr, ptr]
    library.fastgen_free.restype = None
    library.fastgen_free.argtypes = [ptr]
    library.fastgen_has_bfloat16.restype = i64
    library.fastgen_has_bfloat16.argtypes = []
    return library


def build_delay(model: WaveNetAutoencoder) -> str | None:
    """What a decode with this model asked for now would first wait for, in words; None when it starts at once."""
    if _engine.running() and model_unsupported_reason(model) is None:
        return f"the C++ engine's first build on this machine (up to {BUILD_WAIT:g} s)"
    return None


def unavailable_reason(model: WaveNetAutoencoder) -> str | None:
    """Why the fast engine cannot decode with this model (None when it can); builds the engine if needed."""
    return model_unsupported_reason(model) or (None if load_library() else build_error())


def bfloat16_unavailable_reason() -> str | None:
    """Why the engine cannot multiply in bfloat16 here (None when it can); builds the engine if needed."""
    library = load_library()
    if library is None:
        return build_error()
    if not library.fastgen_has_bfloat16():
        return "this CPU (or compiler) has no AVX512-BF16 instructions"
    return None


def model_unsupported_reason(model: WaveNetAutoencoder) -> str | None:
    """Why the engine cannot run this model whatever its build, or None."""
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
    return None


class FastDecoder:
    """The decoder's weights and cache for one batch of notes, decoded chunk by chunk in C++; its products in
    float32 or (`dtype` torch.bfloat16, where bfloat16_unavailable_reason() is None) bfloat16."""

    def __init__(self, model: WaveNetAutoencoder, z: torch.Tensor, pitch: torch.Tensor | None = None,
                 dtype: torch.dtype = torch.float32):
        reason = unavailable_reason(model)
        if reason is None and dtype == torch.bfloat16:
            reason = bfloat16_unavailable_reason()
        elif dtype not in (torch.float32, torch.bfloat16):
            reason = f"it computes in float32 or bfloat16, not {dtype}"
        if reason:
            raise RuntimeError(f"Cannot use the fast decoder: {reason}.")
        decoder, config = model.decoder, model.config
        self.batch, self.frames = z.shape[0], z.shape[1]
        with torch.no_grad():
            *layer_biases, out_bias = decoder.condition_biases(model.conditioning(z.float(), pitch))
            # Frame-major ([F, L, B, 2R] and [F, B, S]): one frame's biases for all rows lie together. The bias
            # of the conv each one is added to is folded in.
            layer_bias = torch.stack([b.permute(2, 0, 1) + layer.dilated.bias
                                      for b, layer in zip(layer_biases, decoder.layers)], dim=1)
            out_bias = out_bias.permute(2, 0, 1) + decoder.out1.bias
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
            config.quantization_channels, config.kernel_size, config.excitation_channels, dtype == torch.bfloat16,
            len(decoder.layers), dilations.data_ptr(),
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
                  length: int | None = None, threads: int | None = None,
                  dtype: torch.dtype = torch.float32) -> np.ndarray:
    """`generate` (same arguments, same result) on the C++ engine; raises RuntimeError if it is unavailable.

    `threads` fixes the thread count; by default it is tuned between 1 and torch.get_num_threads() as it runs.
    `dtype` torch.bfloat16 multiplies in bfloat16: faster, and no longer the same samples as `generate`.
    """
    model.eval()
    batch, frames, _ = z.shape
    length = length or frames * model.config.hop_length
    if length > frames * model.config.hop_length:
        raise ValueError(f"Cannot decode {length} samples from {frames} frames of Z.")
    engine = FastDecoder(model, z.cpu(), None if pitch is None else pitch.cpu(), dtype)
    uniforms = sampling_uniforms(length, batch, temperature, seed)
    tuner = ThreadTuner(min(batch, torch.get_num_threads()))
    codes = torch.empty(batch, length, dtype=torch.int64)
    for start in range(0, length, CHUNK):
        stopping.checkpoint()
        steps = min(CHUNK, length - start)
        chunk_threads = threads or tuner.choose()
        began = time.perf_counter()
        chunk_uniforms = None if uniforms is None else uniforms[start:start + steps]
        codes[:, start:start + steps] = engine.run(steps, chunk_uniforms, temperature, threads=chunk_threads)
        tuner.record(chunk_threads, steps, time.perf_counter() - began)
        if progress is not None:
            progress(start + steps, length)
    return mu_law_decode(codes.numpy()).astype(np.float32)


def generate_fastest(model: WaveNetAutoencoder, z: torch.Tensor, pitch: torch.Tensor | None = None,
                     temperature: float = 1.0, seed: int | None = None, progress: ProgressCallback | None = None,
                     length: int | None = None, dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Audio [B, length] from Z [B, frames, latent]: the fast engine when possible, else `generate`. `dtype`
    torch.bfloat16 asks for the engine's bfloat16 products, used where the CPU has them (else float32)."""
    reason = unavailable_reason(model)
    if reason:
        _warn_once(f"Decoding with the reference generator: {reason}.")
        return generate(model, z, pitch=pitch, temperature=temperature, seed=seed, progress=progress, length=length)
    if dtype == torch.bfloat16 and (why := bfloat16_unavailable_reason()):
        _warn_once(f"Decoding in float32: {why}.")
        dtype = torch.float32
    return fast_generate(model, z, pitch=pitch, temperature=temperature, seed=seed, progress=progress,
                         length=length, dtype=dtype)


if __name__ == "__main__":
    # At install time, so that even the app's first start finds the engine built.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(compiled_library())
