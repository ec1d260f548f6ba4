"""Several visitors at once: `python app.py` on a loopback port, driven by a class of page visitors
(benchmarks/page_visitor.py: each speaks to the server as the page's own script does, all in one event loop, so
the visitors take little of the cores they share with the server).

Each visitor opens the page (its session begins with the map drawn); then, every round, it uploads a new 1 s tone
(a pitch of its own, so nothing comes from a cache), adds it as a note and decodes a 2x2 grid of it with three
bundled notes. Stages, each timed as the visitor sees it:
    upload  the file's HTTP upload (what the page sends when a file is dropped)
    encode  the /add_uploads event that names the uploaded file: read, pitch, encode, place on the map
    note    both: from dropping the file to seeing the note on the map
    grid    the /grid event: 2x2 WaveNet decode of --seconds per cell, zip; decodes queue one at a time
Every request must succeed. It prints p50/p95 latency per stage and per round, what the queue told the visitors
who waited for the encode or the grid (their rank, and the ETA once Gradio has one), the load average, and the
server's resident memory (VmRSS, and its peak VmHWM, from /proc/<pid>/status, with its worker processes'; psutil
is not needed) after each round: after the first round it should grow only by the visitors' own notes (256 kB
each), bounded caches and allocator noise.

    python -m benchmarks.load_test                       # a tiny random WaveNet, 8 visitors, 5 rounds
    python -m benchmarks.load_test --preset cpu-small    # random weights at the small trainable size
    python -m benchmarks.load_test --checkpoint DIR      # the checkpoints in DIR instead
    python -m benchmarks.load_test --spread 30           # each round's visitors arrive over 30 s, not at once
    python -m benchmarks.load_test --notes-only          # a class adding notes: no grids decoding beside
"""

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.page_visitor import Page, QueueView, Visitor, http_client
from nsynth_core.audio.core import SAMPLE_RATE
from nsynth_core.explorer.notes import ASSETS_DIR, NOTES_INDEX
from nsynth_core.models.checkpoint import save_checkpoint
from nsynth_core.models.spectral import SpectralAutoencoder, SpectralConfig
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig
from tests.app_helpers import TINY_WAVENET, running_app, wait_for_warm_up

REQUEST_TIMEOUT = 600  # s for one request, queueing included
STAGES = ("upload", "encode", "note", "grid")
QUEUED = ("encode", "grid")  # the stages that go through Gradio's queue
PRESETS = {
    # The tests' tiny WaveNet widened to the narrowest the C++ decoder takes, so grids use the app's real decoder.
    "tiny": replace(TINY_WAVENET, residual_channels=16, skip_channels=16),
    "cpu-small": WaveNetConfig.preset("cpu-small"),
}


def server_pid() -> int:
    """The `python app.py` started by running_app: a child of this process's main thread."""
    own = os.getpid()
    for pid in Path(f"/proc/{own}/task/{own}/children").read_text().split():
        if "app.py" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0"):
            return int(pid)
    raise RuntimeError("the app's process was not found among this process's children")


def process_tree(pid: int) -> list[int]:
    """The process and the processes it started (the app's pitch search runs in one), whichever thread started
    them."""
    children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    return [pid, *(tree_pid for child in children for tree_pid in process_tree(child))]


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory now (VmRSS) and at its peak (VmHWM) in MiB (/proc counts kB of 1024 bytes), summed over
    the process and its workers (the peaks' sum: at most what they held at once)."""
    totals = {"VmRSS": 0.0, "VmHWM": 0.0}
    for member in process_tree(pid):
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{member}/status").read_text().splitlines())
        for name in totals:
            totals[name] += int(fields[name].split()[0]) / 1024
    return totals


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (/proc/<pid>/stat fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(member) for member in process_tree(pid))


def tone_samples(midi: int) -> np.ndarray:
    """A visitor's 1 s decaying tone at a MIDI pitch."""
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * 440 * 2 ** ((midi - 69) / 12) * t) * np.exp(-2 * t)).astype(np.float32)


def write_tone(path: Path, midi: int) -> Path:
    sf.write(path, tone_samples(midi), SAMPLE_RATE)
    return path


async def visit(visitor: Visitor, tone: Path, corners: list[str], seconds: float,
                decoder: str = "WaveNet") -> dict[str, float | QueueView]:
    """One round of one visitor; returns the seconds each stage took, and what the queue told it ("encode queue",
    "grid queue"). With `seconds` 0 the visitor only adds the note."""
    timings = {}
    start = time.perf_counter()
    uploaded = await visitor.upload(tone)
    timings["upload"] = time.perf_counter() - start
    outputs, timings["encode queue"] = await visitor.call("add_uploads", [uploaded], "family", False)
    timings["note"] = time.perf_counter() - start
    timings["encode"] = timings["note"] - timings["upload"]
    if not seconds:
        return timings

    picker = visitor.page.output("add_uploads", outputs, "dropdown")
    start = time.perf_counter()
    (cells, _, archive, *_), timings["grid queue"] = await visitor.call(  # _: the play-all track
        "grid", picker["value"], *corners, "grid (4 notes)", 2, "bilinear", decoder, 1.0, seconds)
    (await visitor.http.get(archive["url"])).raise_for_status()  # the zip, as a visitor downloads it
    timings["grid"] = time.perf_counter() - start
    if len(cells) != 4:
        raise RuntimeError(f"the grid came back with {len(cells)} cells instead of 4")
    return timings


async def visit_after(delay: float, *visit_arguments) -> dict[str, float | QueueView]:
    """A visitor arriving `delay` seconds into the round; its stages are timed from its own arrival."""
    await asyncio.sleep(delay)
    return await visit(*visit_arguments)


def percentiles(values) -> str:
    p50, p95 = np.percentile(values, [50, 95])
    return f"{len(values):4d}  {p50:8.2f}  {p95:8.2f}  {max(values):8.2f}"


def queue_summary(views: list[QueueView]) -> str:
    """What the queue told the visitors who waited in it, and how soon the others started."""
    told = [view for view in views if view.rank is not None]
    untold = [view for view in views if view.rank is None]
    etas = [view.eta for view in told if view.eta is not None]
    longest = lambda values: max(values, default=0.0)
    return (f"{len(told)} of {len(views)} were told their place in the queue (ranks up to "
            f"{longest(v.rank for v in told)}; {len(etas)} an ETA, up to {longest(etas):.1f} s) and started up "
            f"to {longest(v.started for v in told):.1f} s after they were sent; the other {len(untold)} started at "
            f"most {longest(v.started for v in untold):.1f} s after" + app_estimates(views))


def app_estimates(views: list[QueueView]) -> str:
    """The app's own first estimate of each wait against what was left of it when said."""
    pairs = [(view.app_estimate(), view.done - view.said_at) for view in views if view.app_estimate() is not None]
    if not pairs:
        return "; the app gave no estimate in seconds"
    ratios = [actual / max(told, 1.0) for told, actual in pairs]
    return (f"; the app's own estimate was given to {len(pairs)}: actual / told p50 {np.median(ratios):.2f}, "
            f"max {max(ratios):.2f} (told up to {max(t for t, _ in pairs):.0f} s)")


async def class_visits(url: str, pid: int, work: Path, args, corners: list[str]) -> tuple[dict, dict, list, list]:
    """The rounds: (seconds per stage, what the queue told each, memory after each round, (server, visitors) CPU
    seconds per round)."""
    stages, queued = (STAGES[:3], QUEUED[:1]) if args.notes_only else (STAGES, QUEUED)
    seconds = 0.0 if args.notes_only else args.seconds
    timings = {stage: [] for stage in (*stages, "round")}
    views = {stage: [] for stage in queued}
    memory, cpu = [], []
    page = Page(url)
    async with http_client(REQUEST_TIMEOUT) as http:
        visitors = [Visitor(page, http) for _ in range(args.clients)]
        # Not timed: the first request waits for the map of the example notes and the decoder's first build.
        await visit(visitors[0], write_tone(work / "warm_up.wav", 30), corners, args.seconds)
        # Each visitor has the page open, as a browser's visitor has before adding a note: the page's first events
        # have made the session (Gradio builds each session's state from the whole page's config).
        await asyncio.gather(*(visitor.call("map", "family", None, False) for visitor in visitors))
        memory.append(("after warm-up", memory_mb(pid)))
        for round_index in range(args.rounds):
            tones = [write_tone(work / f"visitor{i}_round{round_index}.wav", 40 + i + args.clients * round_index)
                     for i in range(args.clients)]
            arrivals = np.random.default_rng(round_index).uniform(0, args.spread, args.clients)
            print(f"round {round_index + 1} begins", flush=True)  # e.g. for a profiler to start on
            start, server_cpu, visitors_cpu = time.perf_counter(), tree_cpu_seconds(pid), cpu_seconds(os.getpid())
            results = await asyncio.gather(*(visit_after(delay, visitor, tone, corners, seconds)
                                             for delay, visitor, tone in zip(arrivals, visitors, tones)))
            timings["round"].append(time.perf_counter() - start)
            cpu.append((tree_cpu_seconds(pid) - server_cpu, cpu_seconds(os.getpid()) - visitors_cpu))
            for result in results:
                for stage in stages:
                    timings[stage].append(result[stage])
                for stage in queued:
                    views[stage].append(result[f"{stage} queue"])
            memory.append((f"after round {round_index + 1}", memory_mb(pid)))
            print(f"round {round_index + 1}: {timings['round'][-1]:.1f} s, "
                  f"server RSS {memory[-1][1]['VmRSS']:.0f} MiB", flush=True)
    return timings, views, memory, cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="folder of checkpoints (default: a random WaveNet)")
    parser.add_argument("--preset", choices=PRESETS, default="tiny", help="size of the random WaveNet")
    parser.add_argument("--clients", type=int, default=8, help="visitors")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.25, help="length of each grid cell")
    parser.add_argument("--notes-only", action="store_true", help="visitors only upload and add their note")
    parser.add_argument("--spread", type=float, default=0.0,
                        help="seconds over which a round's visitors arrive, each at a random moment (default: "
                             "all at once)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="nsynth-load-"))
    checkpoints = args.checkpoint
    if checkpoints is None:
        checkpoints = work / "checkpoints"
        save_checkpoint(WaveNetAutoencoder(PRESETS[args.preset]), checkpoints / f"random-{args.preset}",
                        {"note": "random weights for a load test"})
        # Not decoded here, but the page expects both kinds.
        save_checkpoint(SpectralAutoencoder(SpectralConfig.preset("cpu-small")).eval(), checkpoints / "random-spectral")
    corners = [entry["name"] for entry in json.loads((ASSETS_DIR / NOTES_INDEX).read_text())[:3]]
    load_before = os.getloadavg()
    started = time.perf_counter()
    with running_app(checkpoints, work / "app.log") as url:
        pid = server_pid()
        wait_for_warm_up(work / "app.log")  # as visitors who come a minute after it starts find it
        print(f"app at {url} (pid {pid}), log {work / 'app.log'}; warmed up in {time.perf_counter() - started:.0f} s")
        timings, views, memory, cpu = asyncio.run(class_visits(url, pid, work, args, corners))

    load_after = os.getloadavg()
    task = "adding a note" if args.notes_only else f"a note and a 2x2 grid of {args.seconds:g} s cells"
    print(f"\n{args.clients} visitors x {args.rounds} rounds, arriving over {args.spread:g} s, {task}, checkpoints "
          f"{checkpoints}; every request succeeded")
    print(f"load average (1, 5, 15 min) before: {', '.join(f'{x:.1f}' for x in load_before)}; after: "
          f"{', '.join(f'{x:.1f}' for x in load_after)} on {os.cpu_count()} cores")
    print(f"{'stage':>8}  {'n':>4}  {'p50 s':>8}  {'p95 s':>8}  {'max s':>8}")
    for stage, values in timings.items():
        print(f"{stage:>8}  {percentiles(values)}")
    print(f"CPU seconds over the rounds (of {os.cpu_count()} cores x {sum(timings['round']):.1f} s): the server and "
          f"its workers {sum(c[0] for c in cpu):.1f}, the visitors {sum(c[1] for c in cpu):.1f}")
    print("\nthe queue:")
    for stage, stage_views in views.items():
        print(f"  {stage:>6}: {queue_summary(stage_views)}")
    print("\nserver memory, with its workers (MiB):")
    for label, figures in memory:
        print(f"  {label:>15}: RSS {figures['VmRSS']:7.1f}   peak (VmHWM) {figures['VmHWM']:7.1f}")
    first, last = memory[1][1]["VmRSS"], memory[-1][1]["VmRSS"]
    own_notes = args.clients * (args.rounds - 1) * 0.25
    print(f"RSS growth from round 1 to round {args.rounds}: {last - first:+.1f} MiB "
          f"(of which visitors' own notes: {own_notes:.1f} MiB)")
    shutil.rmtree(work)  # kept, with the app's log, only when something failed


if __name__ == "__main__":
    main()
