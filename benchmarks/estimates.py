"""The Grid tab's time estimates against the decodes they announce, for the shipped checkpoints.

As the app does: each decoder is probed once (its warm-up), the examples are encoded beforehand, and every decode
is recorded for the next estimate. Each row is one grid of 1 s cells between four examples not used before (so
no cell comes from the cache): the estimate the page showed before it, the wall time it took, their ratio. Two
rounds of 2 x 2, 3 x 3 and 5 x 5: the first estimates rest on the probe alone, later ones on the decodes so far.

    python -m benchmarks.estimates [--decoders wavenet,spectral,ddsp] [--rounds 2]
"""

import argparse
import os
import time
from pathlib import Path

import torch

from benchmarks.decode import cpu_name, matmul_peak, write_results
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.grids import grid_z, make_grid
from nsynth_core.explorer.loaded_models import encode_notes, encoder_for, load_model
from nsynth_core.audio.core import SAMPLE_RATE

RESULTS = Path(__file__).with_name("estimates_results.md")
SIZES = (2, 3, 5)
TEMPERATURE = 0.25  # the app's default
LABELS = {"wavenet": "WaveNet", "spectral": "Spectral baseline", "ddsp": "DDSP"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoders", default="wavenet,spectral,ddsp")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("NSYNTH_THREADS", "1")))  # as the app (webapp/server.py)
    load_before = os.getloadavg()
    peak, _ = matmul_peak(torch.get_num_threads())
    explorer = Explorer()
    examples = list(explorer.bundled.values())
    wavenet = load_model(explorer.checkpoints()["wavenet"][0][1])
    encode_notes(wavenet, examples)  # as the app's warm-up
    header = "| decoder | round | grid | estimate shown | took | estimate / took |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    print(header, flush=True)
    worst = 1.0
    for kind in args.decoders.split(","):
        loaded = load_model(explorer.checkpoints()[kind][0][1])
        encoder = encoder_for(loaded, wavenet)
        loaded.decoding.probe()
        corners = iter(range(0, len(examples) - 3, 4))
        for round_ in range(1, args.rounds + 1):
            for size in SIZES:
                first = next(corners)
                grid = make_grid(examples[first:first + 4], size)
                grid_z(encoder, grid)  # encoding is not part of the estimate: the app encodes notes on arrival
                shown = loaded.decoding.estimate_seconds(size * size, SAMPLE_RATE)
                start = time.perf_counter()
                explorer.decode_grid(loaded, encoder, grid, TEMPERATURE, SAMPLE_RATE)
                took = time.perf_counter() - start
                ratio = shown / took
                worst = max(worst, ratio, 1 / ratio)
                line = (f"| {LABELS[kind]} | {round_} | {size} x {size} | {shown:.2f} s | {took:.2f} s "
                        f"| {ratio:.2f} |")
                lines.append(line)
                print(line, flush=True)
    load_after = os.getloadavg()
    context = [
        f"Machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s) as the app; matmul peak (torch.mm, 2048 x 2048 float32) "
        f"{peak:.0f} GFLOP/s in this run.",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.1f}' for x in load_before)}; after: "
        f"{', '.join(f'{x:.1f}' for x in load_after)}.",
        f"Worst estimate off by a factor {worst:.2f} (the target: within 1.3 either way).",
    ]
    write_results(RESULTS, "Decode time estimates against the decodes", "benchmarks.estimates", context, lines)


if __name__ == "__main__":
    main()
