"""Decoding speed of the DDSP decoder, beside the WaveNet's fast engine on the same grid.

One 4 s note, a 3 x 3 and a 9 x 9 grid of 4 s notes (Open NSynth Super's 81 cells) through the DDSP decoder
(`cpu-small` and `paper` presets, random weights: speed does not depend on them); the Play tab's largest
multigrid (9 x 9 cells x 16 pitches of 4 s, 1 296 notes) decoded by `cpu-small` and packed for the page as the
app does it (multigrid.py, browser_pack.py); and the same 81 cells through
the WaveNet's C++ engine (`cpu-small`) for its first --wavenet-samples samples of each note, whose rate holds
for the whole note (one decoder step per sample), so the full grid's time is extrapolated from it. With the
torch.mm peak and the load average measured in the same run.

    python -m benchmarks.ddsp_decode [--repeats 3] [--threads 2]
"""

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.decode import cpu_name, matmul_peak, timed, write_results
from nsynth_core.audio.core import NOTE_LENGTH, SAMPLE_RATE
from nsynth_core.exports.browser_pack import write_browser_pack
from nsynth_core.models.ddsp import DDSPConfig, DDSPDecoder
from nsynth_core.explorer.decoding import decoding_for
from nsynth_core.engine.fastgen import build_error, fast_generate, load_library
from nsynth_core.explorer.multigrid import ONS_PITCHES, decode_multigrid
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig

RESULTS = Path(__file__).with_name("ddsp_decode_results.md")
FRAMES = NOTE_LENGTH // 512


@torch.no_grad()
def ddsp_seconds(model, notes: int, repeats: int) -> float:
    torch.manual_seed(0)
    z, pitch = torch.randn(notes, FRAMES, 16), torch.randint(24, 96, (notes,))
    model(z[:1], pitch[:1])  # first call: allocations
    return min(timed(lambda: model(z, pitch))[0] for _ in range(repeats))


@torch.no_grad()
def multigrid_seconds(model) -> tuple[float, float]:
    """(decode s, pack s) of the Play tab's largest multigrid; once: it takes seconds."""
    corner_z = np.random.default_rng(0).standard_normal((4, FRAMES, 16)).astype(np.float32)
    grids = []
    decode_s = timed(lambda: grids.append(decode_multigrid(decoding_for(model), corner_z, 9, ONS_PITCHES)))[0]
    with tempfile.TemporaryDirectory() as folder:
        pack_s = timed(lambda: write_browser_pack(Path(folder) / "grid.pcm", grids[0]))[0]
    return decode_s, pack_s


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--wavenet-samples", type=int, default=4000)
    args = parser.parse_args()
    load_before = os.getloadavg()
    peak, _ = matmul_peak(args.threads)
    torch.set_num_threads(args.threads)
    lines = ["| decoder | preset | notes of 4 s | wall s | ms per note | x real time |",
             "|---|---|---:|---:|---:|---:|"]
    grid = {}
    for preset in ("cpu-small", "paper"):
        model = DDSPDecoder(DDSPConfig.preset(preset)).eval()
        for notes in (1, 9, 81):
            seconds = ddsp_seconds(model, notes, args.repeats)
            grid[preset, notes] = seconds
            lines.append(f"| DDSP | {preset} | {notes} | {seconds:.3f} | {1000 * seconds / notes:.1f} "
                         f"| {notes * NOTE_LENGTH / SAMPLE_RATE / seconds:,.0f} |")
            print(lines[-1], flush=True)
        if preset == "cpu-small":
            decode_s, pack_s = multigrid_seconds(model)
            notes = 81 * len(ONS_PITCHES)
            lines.append(f"| DDSP multigrid 9 x 9 x {len(ONS_PITCHES)} pitches (+ {pack_s:.1f} s packing) | {preset} "
                         f"| {notes} | {decode_s:.2f} | {1000 * decode_s / notes:.1f} "
                         f"| {notes * NOTE_LENGTH / SAMPLE_RATE / decode_s:,.0f} |")
            print(lines[-1], flush=True)
    if load_library() is None:
        raise SystemExit(f"The fast engine is unavailable: {build_error()}")
    wavenet = WaveNetAutoencoder(WaveNetConfig.preset("cpu-small")).eval()
    z = torch.randn(81, FRAMES, 16)
    part = min(timed(lambda: fast_generate(wavenet, z, seed=0, length=args.wavenet_samples))[0]
               for _ in range(max(1, args.repeats - 1)))
    wavenet_grid = part * NOTE_LENGTH / args.wavenet_samples
    lines.append(f"| WaveNet fast engine | cpu-small | 81 | {wavenet_grid:.1f} (from {part:.2f} s for "
                 f"{args.wavenet_samples} samples) | {1000 * wavenet_grid / 81:.0f} "
                 f"| {81 * NOTE_LENGTH / SAMPLE_RATE / wavenet_grid:.2f} |")
    print(lines[-1])
    load_after = os.getloadavg()
    context = [
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, {args.threads} thread(s); torch {torch.__version__}; "
        f"torch.mm peak {peak:.0f} GFLOP/s (2048 x 2048 float32, same run).",
        f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.1f}' for x in load_before)}; after: "
        f"{', '.join(f'{x:.1f}' for x in load_after)}.",
        f"9 x 9 grid of 4 s notes: DDSP cpu-small {grid['cpu-small', 81]:.2f} s, the WaveNet's fast engine "
        f"{wavenet_grid:.0f} s: {wavenet_grid / grid['cpu-small', 81]:,.0f} times longer.",
    ]
    write_results(RESULTS, "DDSP decoding speed", "benchmarks.ddsp_decode", context, lines)


if __name__ == "__main__":
    main()
