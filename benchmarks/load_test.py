"""Several visitors at once: `python app.py` on a loopback port, driven by concurrent gradio_client clients.

Each client opens the page (its session begins with the map drawn); then, every round, it uploads a new 1 s tone
(a pitch of its own, so nothing comes from a cache), adds it as a note and decodes a 2x2 grid of it with three
bundled notes. Stages, each timed as the client sees it:
    upload  the file's HTTP upload (what a browser sends when a file is dropped)
    encode  the /add_uploads event: read, pitch, encode, place on the map (gradio_client sends the 32 kB file
            again with it)
    grid    the /grid event: 2x2 WaveNet decode of --seconds per cell, zip; decodes queue one at a time
Every request must succeed. It prints p50/p95 latency per stage and per round, what the queue told the visitors
who waited for the encode or the grid (their rank, and the ETA once Gradio has one), the load average, and the
server's resident memory (VmRSS, and its peak VmHWM, from /proc/<pid>/status; psutil is not needed) after each
round: after the first round it should grow only by the visitors' own notes (256 kB each), bounded caches and
allocator noise.

    python -m benchmarks.load_test                       # a tiny random WaveNet, 8 clients, 5 rounds
    python -m benchmarks.load_test --preset cpu-small    # random weights at the small trainable size
    python -m benchmarks.load_test --checkpoint DIR      # the checkpoints in DIR instead
    python -m benchmarks.load_test --spread 30           # each round's visitors arrive over 30 s, not at once
    python -m benchmarks.load_test --notes-only          # a class adding notes: no grids decoding beside
    python -m benchmarks.load_test --clients-nice 19     # the clients take only what the server leaves
"""

import argparse
import json
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from gradio_client import Client, handle_file
from gradio_client.client import Job
from gradio_client.utils import Status

from nsynth_core.audio.core import SAMPLE_RATE
from nsynth_core.models.checkpoint import save_checkpoint
from nsynth_core.explorer.notes import ASSETS_DIR, NOTES_INDEX
from nsynth_core.models.spectral import SpectralAutoencoder, SpectralConfig
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig
from tests.app_helpers import TINY_WAVENET, running_app, wait_for_warm_up

REQUEST_TIMEOUT = 600  # s for one request, queueing included
STAGES = ("upload", "encode", "grid")
QUEUED = ("encode", "grid")  # the stages that go through Gradio's queue
JOINING = (Status.STARTING, Status.JOINING_QUEUE, Status.SENDING_DATA)  # before the queue has the job
POLL = 0.05  # s between looks at a job's status
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


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory now (VmRSS) and at its peak (VmHWM), in MiB (/proc counts kB of 1024 bytes)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {name: int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM")}


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (/proc/<pid>/stat fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tone_samples(midi: int) -> np.ndarray:
    """A visitor's 1 s decaying tone at a MIDI pitch."""
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * 440 * 2 ** ((midi - 69) / 12) * t) * np.exp(-2 * t)).astype(np.float32)


def write_tone(path: Path, midi: int) -> Path:
    sf.write(path, tone_samples(midi), SAMPLE_RATE)
    return path


@dataclass
class QueueView:
    """What a visitor's job was told while it waited, when the queue took it and when it started (seconds
    after it was submitted)."""
    rank: int | None = None  # its first place in the queue (0: next)
    eta: float | None = None  # the first ETA, in seconds
    joined: float | None = None
    started: float | None = None
    said: str | None = None  # the app's own first word on its wait (its progress text) that gives seconds
    said_at: float | None = None
    done: float | None = None

    def app_estimate(self) -> float | None:
        """The seconds the app's first estimate said were left ("..., about 3 s")."""
        found = re.search(r"about (\d+) s", self.said or "")
        return float(found.group(1)) if found else None


def followed(job: Job) -> tuple[tuple, QueueView]:
    """The job's result, and what the queue told it on the way."""
    submitted, view = time.perf_counter(), QueueView()
    while not job.done():
        status = job.status()
        if view.joined is None and status.code not in JOINING:
            view.joined = time.perf_counter() - submitted
        if status.code == Status.IN_QUEUE:
            view.rank = status.rank if view.rank is None else view.rank
            view.eta = status.eta if view.eta is None else view.eta
        if view.started is None and status.code in (Status.PROCESSING, Status.PROGRESS):
            view.started = time.perf_counter() - submitted
        said = [unit.desc for unit in status.progress_data or [] if unit.desc and "about" in unit.desc]
        if view.said is None and said:
            view.said, view.said_at = said[0], time.perf_counter() - submitted
        time.sleep(POLL)
    result = job.result(timeout=REQUEST_TIMEOUT)
    done = view.done = time.perf_counter() - submitted
    view.joined = done if view.joined is None else view.joined
    view.started = done if view.started is None else view.started
    return result, view


def visit(client: Client, url: str, tone: Path, corners: list[str], seconds: float,
          decoder: str = "WaveNet") -> dict[str, float | QueueView]:
    """One round of one visitor; returns the seconds each stage took, and what the queue told it ("encode queue",
    "grid queue"). With `seconds` 0 the visitor only adds the note."""
    timings = {}
    start = time.perf_counter()
    with open(tone, "rb") as file:
        httpx.post(f"{url}gradio_api/upload", files=[("files", (tone.name, file))],
                   timeout=REQUEST_TIMEOUT).raise_for_status()
    timings["upload"] = time.perf_counter() - start

    start = time.perf_counter()
    (_, _, picker, *_), timings["encode queue"] = followed(client.submit(
        [handle_file(str(tone))], "family", False, api_name="/add_uploads"))
    timings["encode"] = time.perf_counter() - start
    if not seconds:
        return timings

    start = time.perf_counter()
    (cells, _, archive, _), timings["grid queue"] = followed(client.submit(  # _: the play-all track
        picker["value"], *corners, "grid (4 notes)", 2, "bilinear", decoder, 1.0, seconds, api_name="/grid"))
    timings["grid"] = time.perf_counter() - start
    if len(cells) != 4 or not Path(archive).is_file():
        raise RuntimeError(f"the grid came back with {len(cells)} cells instead of 4")
    return timings


def visit_after(delay: float, *visit_arguments) -> dict[str, float | QueueView]:
    """A visitor arriving `delay` seconds into the round; its stages are timed from its own arrival."""
    time.sleep(delay)
    return visit(*visit_arguments)


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
            f"{longest(v.rank for v in told)}; {len(etas)} an ETA, up to {longest(etas):.1f} s) and waited there up "
            f"to {longest(v.started - v.joined for v in told):.1f} s; the other {len(untold)} started as the queue "
            f"took them, at most {longest(v.started - v.joined for v in untold):.1f} s later (joining took up to "
            f"{longest(v.joined for v in views):.1f} s)" + app_estimates(views))


def app_estimates(views: list[QueueView]) -> str:
    """The app's own first estimate of each wait against what was left of it when said."""
    pairs = [(view.app_estimate(), view.done - view.said_at) for view in views if view.app_estimate() is not None]
    if not pairs:
        return "; the app gave no estimate in seconds"
    ratios = [actual / max(told, 1.0) for told, actual in pairs]
    return (f"; the app's own estimate was given to {len(pairs)}: actual / told p50 {np.median(ratios):.2f}, "
            f"max {max(ratios):.2f} (told up to {max(t for t, _ in pairs):.0f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="folder of checkpoints (default: a random WaveNet)")
    parser.add_argument("--preset", choices=PRESETS, default="tiny", help="size of the random WaveNet")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.25, help="length of each grid cell")
    parser.add_argument("--notes-only", action="store_true", help="visitors only upload and add their note")
    parser.add_argument("--clients-nice", type=int, default=0,
                        help="niceness of the clients once the app has started (a class's browsers run on their "
                             "own devices, not on the server's cores)")
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
    stages, queued = (STAGES[:2], QUEUED[:1]) if args.notes_only else (STAGES, QUEUED)
    seconds = 0.0 if args.notes_only else args.seconds
    timings = {stage: [] for stage in (*stages, "round")}
    views = {stage: [] for stage in queued}
    memory, cpu = [], []  # cpu: (server, clients) CPU seconds per round
    load_before = os.getloadavg()
    started = time.perf_counter()
    with running_app(checkpoints, work / "app.log") as url:
        pid = server_pid()
        wait_for_warm_up(work / "app.log")  # as visitors who come a minute after it starts find it
        print(f"app at {url} (pid {pid}), log {work / 'app.log'}; warmed up in {time.perf_counter() - started:.0f} s")
        os.nice(args.clients_nice)  # this thread's, inherited by the client threads started from here on
        clients = [Client(url, verbose=False) for _ in range(args.clients)]
        # Not timed: the first request waits for the map of the example notes and the decoder's first build.
        visit(clients[0], url, write_tone(work / "warm_up.wav", 30), corners, args.seconds)
        # Each visitor has the page open, as a browser's visitor has before adding a note: the page's first events
        # have made the session (Gradio builds each session's state from the whole page's config).
        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(lambda client: client.predict("family", None, False, api_name="/map"), clients))
        memory.append(("after warm-up", memory_mb(pid)))
        with ThreadPoolExecutor(args.clients) as pool:
            for round_index in range(args.rounds):
                tones = [write_tone(work / f"client{i}_round{round_index}.wav", 40 + i + args.clients * round_index)
                         for i in range(args.clients)]
                arrivals = np.random.default_rng(round_index).uniform(0, args.spread, args.clients)
                start, server_cpu, clients_cpu = time.perf_counter(), cpu_seconds(pid), cpu_seconds(os.getpid())
                results = list(pool.map(visit_after, arrivals, clients, [url] * args.clients, tones,
                                        [corners] * args.clients, [seconds] * args.clients))
                timings["round"].append(time.perf_counter() - start)
                cpu.append((cpu_seconds(pid) - server_cpu, cpu_seconds(os.getpid()) - clients_cpu))
                for result in results:
                    for stage in stages:
                        timings[stage].append(result[stage])
                    for stage in queued:
                        views[stage].append(result[f"{stage} queue"])
                memory.append((f"after round {round_index + 1}", memory_mb(pid)))
                print(f"round {round_index + 1}: {timings['round'][-1]:.1f} s, "
                      f"server RSS {memory[-1][1]['VmRSS']:.0f} MiB", flush=True)

    load_after = os.getloadavg()
    task = "adding a note" if args.notes_only else f"a note and a 2x2 grid of {args.seconds:g} s cells"
    print(f"\n{args.clients} clients (nice {args.clients_nice}) x {args.rounds} rounds, arriving over "
          f"{args.spread:g} s, {task}, checkpoints {checkpoints}; every request succeeded")
    print(f"load average (1, 5, 15 min) before: {', '.join(f'{x:.1f}' for x in load_before)}; after: "
          f"{', '.join(f'{x:.1f}' for x in load_after)} on {os.cpu_count()} cores")
    print(f"{'stage':>8}  {'n':>4}  {'p50 s':>8}  {'p95 s':>8}  {'max s':>8}")
    for stage in (*stages, "round"):
        print(f"{stage:>8}  {percentiles(timings[stage])}")
    print(f"CPU seconds over the rounds (of {os.cpu_count()} cores x "
          f"{sum(timings['round']):.1f} s): the server {sum(c[0] for c in cpu):.1f}, this process's clients "
          f"{sum(c[1] for c in cpu):.1f}")
    print("\nthe queue:")
    for stage in queued:
        print(f"  {stage:>6}: {queue_summary(views[stage])}")
    print("\nserver memory (MiB):")
    for label, figures in memory:
        print(f"  {label:>15}: RSS {figures['VmRSS']:7.1f}   peak (VmHWM) {figures['VmHWM']:7.1f}")
    first, last = memory[1][1]["VmRSS"], memory[-1][1]["VmRSS"]
    own_notes = args.clients * (args.rounds - 1) * 0.25
    print(f"RSS growth from round 1 to round {args.rounds}: {last - first:+.1f} MiB "
          f"(of which visitors' own notes: {own_notes:.1f} MiB)")
    shutil.rmtree(work)  # kept, with the app's log, only when something failed


if __name__ == "__main__":
    main()
