"""Decoding speed of the WaveNet decoder: naive recomputation, the reference incremental generator, the C++ engine.

Random weights (speed does not depend on their values). For each engine, batch and preset it prints the aggregate
samples/s over all notes of the batch, the ratio to real time (16 kHz), the samples per CPU-second (the work
rate, less sensitive than wall time to other work on the machine) and the achieved GFLOP/s against a measured
float32 matmul peak. Each row is the best of `--repeats` runs; the table also goes to decode_results.md. Then
the two figures the engine is judged by: a 9 x 9 grid of 4 s notes (Open NSynth Super's 81 cells) against the
torch.mm peak on all cores, and the `paper` preset at batch 9 and 16 against its FLOP floor at that peak. Where the
CPU has AVX512-BF16, the engine's bfloat16 products (what the app decodes with there) get rows of their own.

    python -m benchmarks.decode [--repeats 2]
"""

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from nsynth_core.audio.core import SAMPLE_RATE, mu_law_decode
from nsynth_core.engine.fastgen import FastDecoder, bfloat16_unavailable_reason, build_error, fast_generate, load_library
from nsynth_core.engine.generate import generate, sampling_uniforms
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig, count_parameters, decoder_flops_per_sample

RESULTS = Path(__file__).with_name("decode_results.md")
FRAMES = 125  # a 4 s note


@torch.no_grad()
def naive_generate(model, z, length, start=0):
    """Samples start..start+length-1 (after silence), each from a teacher-forced pass over all audio so far."""
    hop = model.config.hop_length
    audio = torch.zeros(z.shape[0], start + length)
    for t in range(start, start + length):
        # Sample t itself is shifted out of view; only the frames of Z reaching sample t are needed.
        logits = model.decode_logits(audio[:, :t + 1], z[:, :t // hop + 1])[:, :, t]
        audio[:, t] = mu_law_decode(logits.argmax(dim=-1) - 128)
    return audio


def matmul_peak(threads: int, size: int = 2048, repeats: int = 5) -> tuple[float, float]:
    """GFLOP/s of torch.mm on large float32 matrices: per second of wall time and per CPU-second."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    wall, cpu = min(timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size ** 3 / wall / 1e9, 2 * size ** 3 / cpu / 1e9


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def write_results(path: Path, title: str, module: str, context: list[str], lines: list[str]) -> None:
    """Prints the context sentences and writes them with the table to a markdown file beside the benchmark."""
    for text in context:
        print(text)
    path.write_text(f"# {title}\n\nWritten by `python -m {module}`.\n\n" + "\n\n".join(context) + "\n\n"
                    + "\n".join(lines) + "\n")


def timed(run):
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(engine, model, batch, start, length, threads, repeats):
    torch.manual_seed(0)
    z = torch.randn(batch, FRAMES, model.config.latent_channels)
    torch.set_num_threads(threads)
    if engine == "fast, sample loop":
        # The paper preset's few steps: they are shorter than the chunk over which the thread count is tuned,
        # and its set-up (a second or two of packing 62 M weights, paid once per note) would hide their rate.
        decoder = FastDecoder(model, z)
        uniforms = sampling_uniforms(length, batch, 1.0, seed=0)
        return min(timed(lambda: decoder.run(length, uniforms, threads=threads)) for _ in range(repeats))
    runs = {
        "naive": lambda: naive_generate(model, z, length, start),
        "reference": lambda: generate(model, z, seed=0, length=length),
        "fast": lambda: fast_generate(model, z, seed=0, length=length),
        "fast, bfloat16": lambda: fast_generate(model, z, seed=0, length=length, dtype=torch.bfloat16),
    }
    return min(timed(runs[engine]) for _ in range(repeats))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="runs per row; the best is kept")
    args = parser.parse_args()
    if load_library() is None:
        raise SystemExit(f"The fast engine is unavailable: {build_error()}")
    cores = os.cpu_count()
    load_before = os.getloadavg()
    peaks = {threads: matmul_peak(threads) for threads in sorted({1, cores})}
    models = {name: WaveNetAutoencoder(WaveNetConfig.preset(name)).eval() for name in ("cpu-small", "paper")}

    # The eager engines run on one thread: on two their per-op overhead only grows, and it collapses when other
    # work shares the cores. The fast engine is given `cores` threads and tunes between one and that.
    # engine, preset, batch, first sample, samples per note, threads
    plan = [
        ("naive", "cpu-small", 1, 0, 64, 1),
        ("naive", "cpu-small", 9, 0, 64, 1),
        ("naive", "cpu-small", 9, 4000, 1, 1),  # a quarter of a second into a note
        ("reference", "cpu-small", 1, 0, 200, 1),
        ("reference", "cpu-small", 9, 0, 200, 1),
        ("reference", "cpu-small", 16, 0, 200, 1),
        ("fast", "cpu-small", 1, 0, 16000, cores),
        ("fast", "cpu-small", 9, 0, 64000, cores),  # a 3 x 3 grid of 4 s notes
        ("fast", "cpu-small", 9, 0, 16000, 1),
        ("fast", "cpu-small", 16, 0, 16000, cores),
        ("fast", "cpu-small", 81, 0, 64000, cores),  # a 9 x 9 grid of 4 s notes
        ("reference", "paper", 9, 0, 16, 1),
        ("fast", "paper", 9, 0, 100, 1),
        ("fast, sample loop", "paper", 9, 0, 100, 1),
        ("fast, sample loop", "paper", 9, 0, 100, cores),
        ("fast, sample loop", "paper", 16, 0, 100, cores),
    ]
    if bfloat16_unavailable_reason() is None:
        plan += [("fast, bfloat16", "cpu-small", batch, 0, 64000, cores) for batch in (9, 81)]
    header = ("| engine | preset | batch | threads | samples | wall s | samples/s | x real time | GFLOP/s "
              "| samples/CPU-s | GFLOP/CPU-s | % of matmul GFLOP/CPU-s | % of matmul GFLOP/s on all cores |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    measured = []
    for engine, preset, batch, start, length, threads in plan:
        measured.append(measure(engine, models[preset], batch, start, length, threads, args.repeats))
        print(f"{engine} {preset} batch {batch}: {measured[-1][0]:.2f} s", flush=True)
    # The peak again, its best of both kept: a peak measured while other work briefly loaded the cores would
    # flatter every ratio.
    peaks = {threads: tuple(map(max, peak, matmul_peak(threads))) for threads, peak in peaks.items()}
    print(header)
    rates = {}
    for (engine, preset, batch, start, length, threads), (wall, cpu) in zip(plan, measured):
        flops = decoder_flops_per_sample(models[preset].config)
        rate, cpu_rate = batch * length / wall, batch * length / cpu
        samples = f"{start}-{start + length}" if start else f"{length}"
        usable = min(threads, batch)
        threads_used = f"1-{usable} tuned" if engine in ("fast", "fast, bfloat16") and usable > 1 else f"{usable}"
        gflops, cpu_gflops = rate * flops / 1e9, cpu_rate * flops / 1e9
        rates[engine, preset, batch, threads] = rate, cpu_rate
        line = (f"| {engine} | {preset} | {batch} | {threads_used} | {samples} | {wall:.2f} | {rate:,.0f} "
                f"| {rate / SAMPLE_RATE:.3g} | {gflops:.3g} | {cpu_rate:,.0f} | {cpu_gflops:.3g} "
                f"| {100 * cpu_gflops / peaks[1][1]:.2g} | {100 * gflops / peaks[cores][0]:.2g} |")
        lines.append(line)
        print(line)
    load_after = os.getloadavg()
    peak, cpu_peak = peaks[cores]
    small, paper = (decoder_flops_per_sample(models[name].config) for name in ("cpu-small", "paper"))
    grid_samples = 81 * FRAMES * models["cpu-small"].config.hop_length
    floor_rate = peak * 1e9 / paper  # samples/s if every FLOP ran at the matmul peak
    judged = [
        f"9 x 9 grid of 4 s notes (81 notes, {grid_samples / 1e6:.2f} M samples, cpu-small) on {cores} threads "
        f"(tuned), {precision}: {grid_samples / grid_rate:.1f} s, {grid_rate:,.0f} samples/s = "
        f"{grid_rate * small / 1e9:.0f} GFLOP/s, {100 * grid_rate * small / 1e9 / peak:.0f} % of the {cores}-thread "
        f"float32 torch.mm peak of this run ({peak:.0f} GFLOP/s); per CPU-second "
        f"{100 * grid_cpu_rate * small / 1e9 / cpu_peak:.0f} % of torch.mm's ({cpu_peak:.0f} GFLOP/CPU-s)."
        for precision, engine in (("float32", "fast"), ("bfloat16 products", "fast, bfloat16"))
        if (engine, "cpu-small", 81, cores) in rates
        for grid_rate, grid_cpu_rate in [rates[engine, "cpu-small", 81, cores]]
    ] + [
        f"At that peak a float32 engine's floor would be {peak * 1e9 / small:,.0f} samples/s "
        f"({grid_samples * small / peak / 1e9:.1f} s for the 9 x 9 grid).",
        f"paper preset ({paper / 1e6:.1f} MFLOP/sample): its FLOP floor at the "
        f"{cores}-thread peak is {floor_rate:,.0f} samples/s; the engine's sample loop ran "
        + ", ".join(f"{rate:,.0f} samples/s at batch {batch} on {threads} thread(s) ({floor_rate / rate:.1f} x the "
                    "floor)" for (engine, preset, batch, threads), (rate, _) in rates.items()
                    if preset == "paper" and engine == "fast, sample loop") + ".",
    ]

    context = [
        f"Machine: {cpu_name()}, {cores} cores; torch {torch.__version__}.",
        "Matmul peak (torch.mm, 2048 x 2048 float32, the best of before and after the rows): "
        + ", ".join(f"{wall:.0f} GFLOP/s and {cpu:.0f} GFLOP/CPU-s on {threads} thread(s)"
                    for threads, (wall, cpu) in peaks.items()) + ".",
        f"Load average (1, 5, 15 min) before: {load_before[0]:.1f}, {load_before[1]:.1f}, {load_before[2]:.1f}; "
        f"after: {load_after[0]:.1f}, {load_after[1]:.1f}, {load_after[2]:.1f} (over {cores} means other work "
        "shared the cores and wall times are longer than on an idle machine).",
        f"Best of {args.repeats} runs per row. Decoder work: "
        + ", ".join(f"{name} {decoder_flops_per_sample(m.config) / 1e6:.2f} MFLOP/sample"
                    for name, m in models.items()) + ". Parameters: "
        + ", ".join(f"{name} {count_parameters(m):,}" for name, m in models.items()) + ".",
        "naive recomputes the teacher-forced forward over all samples so far at every step, so its rate falls as "
        "the note grows: it is measured over the first 64 samples and at one sample 0.25 s into a note. "
        "x real time is the aggregate rate over all notes of the batch divided by 16 kHz. "
        "Per CPU-second figures count the work done per second that the process actually ran, "
        "so they change less than wall-time figures with other load on the machine.",
        *judged,
    ]
    write_results(RESULTS, "Decoding speed", "benchmarks.decode", context, lines)


if __name__ == "__main__":
    main()
