"""Speed of one WaveNet training step (forward, backward, gradient clipping, Adam) in float32 and bfloat16.

The shipped `cpu-small` configuration (pitch conditioning, harmonic excitation, batch 4 crops of 6 144 samples)
on random weights and random notes; each row is the best of `--repeats` steps after one warm-up step. bfloat16
rows are only measured where the hardware has bf16 matmuls (what `train.py --precision auto` picks). The table
also goes to train_step_results.md.

    python -m benchmarks.train_step [--repeats 3]
"""

import argparse
import os
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.decode import cpu_name, timed
from nsynth_core.engine.precision import native_bf16
from train.train import TRAIN_CONFIGS, LossOf, build_model, training_step

RESULTS = Path(__file__).with_name("train_step_results.md")


def step_seconds(config, precision: str, threads: int, repeats: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of `repeats` training steps."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(config)
    loss_of = LossOf(model, config.pitch_conditioning)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    audio = 0.3 * torch.randn(config.batch_size, config.crop_length).clamp(-3, 3) / 3
    pitch = torch.randint(24, 96, (config.batch_size,))

    def step():
        training_step(loss_of, model, optimizer, (audio, pitch), config.grad_clip, bf16=precision == "bf16")

    step()
    return min((timed(step) for _ in range(repeats)), key=lambda t: t[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = replace(TRAIN_CONFIGS["cpu-small"], pitch_conditioning=True)
    samples = config.batch_size * config.crop_length
    precisions = ["fp32", "bf16"] if native_bf16(torch.device("cpu")) else ["fp32"]
    cores = os.cpu_count()
    load_before = os.getloadavg()
    rows = []
    for threads in sorted({1, cores}):
        for precision in precisions:
            wall, cpu = step_seconds(config, precision, threads, args.repeats)
            rows.append(f"| {precision} | {threads} | {wall:.2f} | {cpu:.2f} | {samples / wall:,.0f} |")
            print(rows[-1], flush=True)
    load_after = os.getloadavg()
    text = "\n".join([
        "# Training-step speed", "", "Written by `python -m benchmarks.train_step`.", "",
        f"Machine: {cpu_name()}, {cores} cores; torch {torch.__version__}; bf16 matmuls in hardware: "
        f"{'yes' if len(precisions) == 2 else 'no'}.", "",
        f"Load average (1 min) before: {load_before[0]:.1f}, after: {load_after[0]:.1f} (over {cores} means other "
        "work shared the cores).", "",
        f"WaveNet `cpu-small`, pitch-conditioned with the harmonic excitation, batch {config.batch_size} x "
        f"{config.crop_length} samples; best of {args.repeats} steps.", "",
        "| precision | threads | wall s / step | CPU s / step | training samples / s |",
        "|---|---|---|---|---|", *rows, ""])
    RESULTS.write_text(text)
    print(f"Wrote {RESULTS}")


if __name__ == "__main__":
    main()
