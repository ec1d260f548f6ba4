"""The figures and checks of scripts/gpu_check.sh, run on the GPU when there is one, else on the CPU.

    python scripts/gpu_check.py torch-info
    python scripts/gpu_check.py train TRAIN_ARGS...
    python scripts/gpu_check.py decode --preset paper --batch 1 32 --samples 1000
    python scripts/gpu_check.py convert WORK_DIR

`train` runs `train.train TRAIN_ARGS` in this process (under torchrun too, one process per rank), then prints the
training loop's samples/s from the run's metrics.csv, this process's peak memory, and how long the paper's
200 000 steps would take at that rate. `decode` times the reference generator (nsynth_core/generate.py) on
random weights. `convert` imports the tests' tiny TensorFlow checkpoint through the Magenta converter's command
line, loads it on the device and checks its outputs against the tests' NumPy restatement of Magenta's graph.
Figures go to lines starting with "figure: ", which gpu_check.sh copies into its summary.
"""

import argparse
import csv
import json
import os
import resource
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.decode import cpu_name, measure  # noqa: E402
from nsynth_core import default_device  # noqa: E402
from nsynth_core.audio.core import NOTE_LENGTH, SAMPLE_RATE  # noqa: E402
from nsynth_core.models.checkpoint import load_checkpoint  # noqa: E402
from nsynth_core.data.convert_magenta import MOVING_AVERAGE, main as convert_main  # noqa: E402
from nsynth_core.data.tf_checkpoint import TFCheckpoint  # noqa: E402
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig  # noqa: E402
from tests.nsynth_core.data.test_convert_magenta import CYCLE, FIXTURE, HOP, magenta_outputs, mu_law_bin_centres  # noqa: E402
from train.train import TRAIN_CONFIGS, main as train_main  # noqa: E402


def figure(text: str):
    print(f"figure: {text}", flush=True)


def peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB (CUDA allocator peak)"
    # ru_maxrss counts KiB on Linux.
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (peak resident set, CPU)"


def torch_info():
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU"
    figure(f"torch {torch.__version__} ({build} build)")
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_properties(0)
        figure(f"{torch.cuda.device_count()} x {gpu.name}, {gpu.total_memory / 2**30:.0f} GiB, "
               f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")
    else:
        figure(f"no CUDA device; CPU {cpu_name()}, {os.cpu_count()} cores")


def train_and_report(train_args: list[str]):
    train_main(train_args)
    if int(os.environ.get("RANK", "0")):  # rank 0 alone writes metrics.csv
        return
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--out", type=Path, required=True)
    options.add_argument("--precision", default="auto")
    known, _ = options.parse_known_args(train_args)
    with open(known.out / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    config = json.loads((known.out / "state.json").read_text())["train_config"]
    warm_up = max(1, len(rows) // 10)  # the first steps also pay for start-up (CUDA context, allocator growth)
    if len(rows) <= warm_up:
        raise SystemExit(f"Only {len(rows)} steps were logged: too few to time.")
    first, last = rows[warm_up - 1], rows[-1]
    steps = int(last["step"]) - int(first["step"])
    samples = int(last["samples_seen"]) - int(first["samples_seen"])
    seconds = float(last["wall_seconds"]) - float(first["wall_seconds"])
    if seconds <= 0:
        raise SystemExit("The timed steps took under the 0.1 s that metrics.csv resolves.")
    rate = samples / seconds
    figure(f"{rate:,.0f} training samples/s: {seconds / steps:.3f} s per step of batch {config['batch_size']} x "
           f"{config['crop_length']:,} samples, steps {int(first['step']) + 1}-{last['step']}, "
           f"--precision {known.precision}, {os.environ.get('WORLD_SIZE', '1')} process(es)")
    figure(f"peak memory {peak_memory(default_device())}")
    paper = TRAIN_CONFIGS["paper"]
    paper_samples = paper.max_steps * paper.batch_size * paper.crop_length
    figure(f"the paper's {paper.max_steps:,} steps of batch {paper.batch_size} x {paper.crop_length:,} would take "
           f"{paper_samples / rate / 86400:.1f} days at this rate")


def decode_speed(preset: str, batches: list[int], samples: int):
    device = default_device()
    model = WaveNetAutoencoder(WaveNetConfig.preset(preset)).to(device).eval()
    for batch in batches:
        # Best of two runs: the first also warms up (kernels loaded, allocator grown).
        wall, _ = measure("reference", model, batch, 0, samples, threads=1, repeats=2)
        rate = batch * samples / wall
        figure(f"{preset} preset, reference generator on {device.type}, batch {batch}: {rate:,.0f} samples/s "
               f"({rate / SAMPLE_RATE:.3g} x real time; a batch of 4 s notes in {NOTE_LENGTH * batch / rate:,.0f} s)")
    figure(f"peak memory {peak_memory(device)}")


@torch.no_grad()
def convert_and_check(work: Path):
    device = default_device()
    if device.type == "cuda":  # full float32 convolutions (not TF32), so the tests' tolerances apply
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    convert_main([str(FIXTURE), str(work / "magenta"), "--hop-length", str(HOP), "--dilation-cycle", str(CYCLE)])
    model, _ = load_checkpoint(work / "magenta", device)
    audio = mu_law_bin_centres(np.random.default_rng(0), (2, 4 * HOP))
    clips = torch.from_numpy(audio).to(device)
    z = model.encode(clips).double().cpu().numpy()
    logits = model(clips).double().cpu().numpy()
    checkpoint = TFCheckpoint(FIXTURE)
    moving_average = lambda name: checkpoint.read(name + MOVING_AVERAGE).astype(np.float64)
    largest = 0.0
    for clip in range(len(audio)):
        z_ref, logits_ref = magenta_outputs(audio[clip], moving_average, model.config.encoder_layers,
                                            model.config.decoder_layers)
        np.testing.assert_allclose(z[clip], z_ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(logits[clip].T, logits_ref, rtol=1e-4, atol=1e-4)
        largest = max(largest, np.abs(logits[clip].T - logits_ref).max())
    figure(f"converted {FIXTURE.name} runs on {device.type} and matches Magenta's equations "
           f"(largest logit difference {largest:.1e})")


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("torch-info", help="torch build and device")
    commands.add_parser("train", add_help=False, help="train.train with the arguments that follow, then figures")
    decode = commands.add_parser("decode", help="reference generator speed on random weights")
    decode.add_argument("--preset", default="paper")
    decode.add_argument("--batch", type=int, nargs="+", default=[1])
    decode.add_argument("--samples", type=int, default=1000, help="samples per note")
    convert = commands.add_parser("convert", help="Magenta converter on the tests' checkpoint, checked here")
    convert.add_argument("work", type=Path, help="folder for the converted checkpoint")
    args, rest = parser.parse_known_args(argv)
    if args.command == "train":
        return train_and_report(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "torch-info":
        torch_info()
    elif args.command == "decode":
        decode_speed(args.preset, args.batch, args.samples)
    else:
        convert_and_check(args.work)


if __name__ == "__main__":
    main()
