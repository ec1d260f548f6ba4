"""Tiny randomly initialised checkpoints and a running app, so app tests take seconds, not a trained model."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from nsynth_core.models.checkpoint import save_checkpoint, weights_fingerprint
from webapp.texts import WARM_UP_DONE
from nsynth_core.models.ddsp import DDSPConfig, DDSPDecoder
from nsynth_core.models.spectral import SpectralAutoencoder, SpectralConfig
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig

REPO = Path(__file__).resolve().parent.parent
TINY_WAVENET = WaveNetConfig(encoder_channels=8, encoder_layers=2, encoder_cycle=2, residual_channels=8,
                             skip_channels=8, decoder_layers=2, decoder_cycle=2)
TINY_DDSP = DDSPConfig(hidden=16, mlp_layers=1, gru_channels=16, subframes=4, harmonics=8, noise_bands=9,
                       reverb_samples=0)
STARTUP_SECONDS = 180  # imports and the first UMAP compilation on a busy 2-core machine
WARM_UP_SECONDS = 900  # the app's warm-up after it answers: encoding the examples, timing the decoders


def write_tiny_checkpoints(directory, seed=0):
    """Writes directory/tiny-wavenet, tiny-spectral and tiny-ddsp (reading tiny-wavenet's Z); returns their paths
    (without suffix)."""
    torch.manual_seed(seed)
    wavenet = directory / "tiny-wavenet"
    spectral = directory / "tiny-spectral"
    ddsp = directory / "tiny-ddsp"
    save_checkpoint(WaveNetAutoencoder(TINY_WAVENET), wavenet, {"note": "random weights for tests"})
    save_checkpoint(SpectralAutoencoder(SpectralConfig.preset("cpu-small")).eval(), spectral)
    save_checkpoint(DDSPDecoder(TINY_DDSP), ddsp, {"encoder": weights_fingerprint(wavenet)})
    return wavenet, spectral, ddsp


def write_nan_weights(directory, name="nan_weights"):
    """tiny-wavenet's header and weights with one tensor made NaN: a file that reads cleanly."""
    tensors = load_file(str(directory / "tiny-wavenet.safetensors"))
    tensors["decoder.logits.weight"][0] = float("nan")
    save_file(tensors, str(directory / f"{name}.safetensors"))
    shutil.copy(directory / "tiny-wavenet.json", directory / f"{name}.json")
    return directory / name


def add_broken_checkpoints(directory):
    """Next to good tiny-wavenet and tiny-spectral: garbage weights, weights of another model, a broken JSON,
    NaN weights."""
    write_nan_weights(directory)
    shutil.copy(directory / "tiny-wavenet.json", directory / "corrupt.json")
    (directory / "corrupt.safetensors").write_bytes(b"\x00" * 64)
    shutil.copy(directory / "tiny-wavenet.json", directory / "mismatched.json")
    shutil.copy(directory / "tiny-spectral.safetensors", directory / "mismatched.safetensors")
    (directory / "half_written.json").write_text('{"kind": "wavenet", "config": {')
    shutil.copy(directory / "tiny-wavenet.safetensors", directory / "half_written.safetensors")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_app(checkpoints_dir, log_path):
    """`python app.py` on a free local port with the given checkpoints; yields its URL."""
    port = free_port()
    env = {**os.environ, "NSYNTH_CHECKPOINTS": str(checkpoints_dir), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"app.py exited with {server.returncode}:\n{Path(log_path).read_text()}")
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"app.py did not answer within {STARTUP_SECONDS} s")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def wait_for_warm_up(log: Path):
    """Until the app started by running_app (logging to `log`) says it has warmed up."""
    deadline = time.monotonic() + WARM_UP_SECONDS
    while WARM_UP_DONE not in log.read_text():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the app did not finish warming up within {WARM_UP_SECONDS} s")
        time.sleep(1)


@contextmanager
def built_page(tmp_path_factory, name="page"):
    """(explorer, the page app.build makes) in this process over tiny checkpoints, its files written to a
    temporary folder."""
    import app
    from nsynth_core.explorer.explorer import Explorer
    from nsynth_core.exports import files as exports

    checkpoints = tmp_path_factory.mktemp(f"{name}_checkpoints")
    write_tiny_checkpoints(checkpoints)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(exports.OUTPUTS_ENV, str(tmp_path_factory.mktemp(f"{name}_outputs")))
        explorer = Explorer(checkpoints)
        yield explorer, app.build(explorer, app.notes_queue_for(explorer))
