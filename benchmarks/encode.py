"""Encoding speed of the WaveNet encoder: the convolutional forward pass against the inference path encode() uses,
in float32 and, where the CPU runs it in hardware (what the app encodes visitors' notes in), in bfloat16.

For one 4 s note and a batch of --batch notes it prints seconds per note, the achieved GFLOP/s as a share of the
torch.mm peak measured in the same run, user and system CPU seconds (system time counts the page faults of big
temporary tensors) and the peak resident memory added by each path.

    python -m benchmarks.encode [--preset cpu-small] [--batch 8] [--threads 2]
"""

import argparse
import os
import resource
import time

import torch

from benchmarks.decode import cpu_name, matmul_peak
from nsynth_core.audio.core import NOTE_LENGTH
from nsynth_core.engine.precision import native_bf16
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig


def encoder_flops_per_sample(config: WaveNetConfig) -> int:
    c, k = config.encoder_channels, config.kernel_size
    per_layer = k * c * c + c * c  # dilated conv and residual 1x1, multiply-adds
    return 2 * (k * c + config.encoder_layers * per_layer + c * config.latent_channels)


def run(encode, audio):
    """(wall, user, system) seconds of one call."""
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    encode(audio)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return time.perf_counter() - start, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    peak, _ = matmul_peak(args.threads)
    torch.set_num_threads(args.threads)
    model = WaveNetAutoencoder(WaveNetConfig.preset(args.preset)).eval()
    flops = encoder_flops_per_sample(model.config) * NOTE_LENGTH
    paths = {
        "convolutional forward": lambda audio: model.encoder(model.scale_input(audio)),
        "inference path (encode), float32": lambda audio: model.encode(audio, torch.float32),
    }
    if native_bf16(torch.device("cpu")):
        paths["inference path (encode), bfloat16"] = lambda audio: model.encode(audio, torch.bfloat16)
    print("| path | notes | s per note | GFLOP/s | % of mm peak | user s | system s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with torch.no_grad():
        for name, encode in paths.items():
            for notes in (1, args.batch):
                audio = torch.rand(notes, NOTE_LENGTH) * 0.34 - 0.17
                encode(audio[:1])
                wall, user, system = min((run(encode, audio) for _ in range(args.repeats)), key=lambda r: r[0])
                rate = notes * flops / wall / 1e9
                print(f"| {name} | {notes} | {wall / notes:.3f} | {rate:.0f} | {100 * rate / peak:.0f} "
                      f"| {user:.2f} | {system:.2f} |", flush=True)
    load_after = os.getloadavg()
    print(f"\nMachine: {cpu_name()}, {args.threads} thread(s), torch {torch.__version__}; {args.preset} encoder "
          f"{flops / 1e9:.1f} GFLOP per 4 s note; torch.mm peak {peak:.0f} GFLOP/s in the same run; load average "
          f"before {load_before[0]:.1f}, after {load_after[0]:.1f}; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB.")


if __name__ == "__main__":
    main()
