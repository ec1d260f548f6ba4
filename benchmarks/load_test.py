"""Several visitors at once: `python app.py` on a loopback port, driven by concurrent gradio_client clients.

Each client, every round, uploads a new 1 s tone (a pitch of its own, so nothing comes from a cache), adds it as a
note and decodes a 2x2 grid of it with three bundled notes. Stages, each timed as the client sees it:
    upload  the file's HTTP upload (what a browser sends when a file is dropped)
    encode  the /add_uploads event: read, pitch, encode, place on the map (gradio_client sends the 32 kB file
            again with it)
    grid    the /grid event: 2x2 WaveNet decode of --seconds per cell, zip; decodes queue one at a time
Every request must succeed. It prints p50/p95 latency per stage and per round, and the server's resident memory
(VmRSS, and its peak VmHWM, from /proc/<pid>/status; psutil is not needed) after each round: after the first
round it should grow only by the visitors' own notes (256 kB each), bounded caches and allocator noise.

    python -m benchmarks.load_test                       # a tiny random WaveNet, 8 clients, 5 rounds
    python -m benchmarks.load_test --preset cpu-small    # random weights at the small trainable size
    python -m benchmarks.load_test --checkpoint DIR      # the checkpoints in DIR instead
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from gradio_client import Client, handle_file

from nsynth_core.audio import SAMPLE_RATE
from nsynth_core.checkpoint import save_checkpoint
from nsynth_core.explorer import ASSETS_DIR, NOTES_INDEX
from nsynth_core.spectral import SpectralAutoencoder, SpectralConfig
from nsynth_core.wavenet import WaveNetAutoencoder, WaveNetConfig
from tests.app_helpers import TINY_WAVENET, running_app

REQUEST_TIMEOUT = 600  # s for one request, queueing included
STAGES = ("upload", "encode", "grid")
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


def write_tone(path: Path, midi: int) -> Path:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    sf.write(path, 0.5 * np.sin(2 * np.pi * 440 * 2 ** ((midi - 69) / 12) * t) * np.exp(-2 * t), SAMPLE_RATE)
    return path


def visit(client: Client, url: str, tone: Path, corners: list[str], seconds: float,
          decoder: str = "WaveNet") -> dict[str, float]:
    """One round of one visitor; returns the seconds each stage took."""
    timings = {}
    start = time.perf_counter()
    with open(tone, "rb") as file:
        httpx.post(f"{url}gradio_api/upload", files=[("files", (tone.name, file))],
                   timeout=REQUEST_TIMEOUT).raise_for_status()
    timings["upload"] = time.perf_counter() - start

    start = time.perf_counter()
    _, _, picker, *_ = client.submit([handle_file(str(tone))], "family", False,
                                     api_name="/add_uploads").result(timeout=REQUEST_TIMEOUT)
    timings["encode"] = time.perf_counter() - start

    start = time.perf_counter()
    *players, _, archive, _ = client.submit(picker["value"], *corners, "grid (4 notes)", 2, "bilinear", decoder, 1.0,
                                         seconds, api_name="/grid").result(timeout=REQUEST_TIMEOUT)
    timings["grid"] = time.perf_counter() - start
    played = [player["value"] for player in players if player.get("visible")]
    if len(played) != 4 or not Path(archive).is_file():
        raise RuntimeError(f"the grid came back with {len(played)} cells instead of 4")
    return timings


def percentiles(values) -> str:
    p50, p95 = np.percentile(values, [50, 95])
    return f"{len(values):4d}  {p50:8.2f}  {p95:8.2f}  {max(values):8.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="folder of checkpoints (default: a random WaveNet)")
    parser.add_argument("--preset", choices=PRESETS, default="tiny", help="size of the random WaveNet")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.25, help="length of each grid cell")
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
    timings = {stage: [] for stage in (*STAGES, "round")}
    memory = []
    started = time.perf_counter()
    with running_app(checkpoints, work / "app.log") as url:
        pid = server_pid()
        print(f"app at {url} (pid {pid}), log {work / 'app.log'}; started in {time.perf_counter() - started:.0f} s")
        clients = [Client(url, verbose=False) for _ in range(args.clients)]
        # Not timed: the first request waits for the map of the example notes and the decoder's first build.
        visit(clients[0], url, write_tone(work / "warm_up.wav", 30), corners, args.seconds)
        memory.append(("after warm-up", memory_mb(pid)))
        with ThreadPoolExecutor(args.clients) as pool:
            for round_index in range(args.rounds):
                tones = [write_tone(work / f"client{i}_round{round_index}.wav", 40 + i + args.clients * round_index)
                         for i in range(args.clients)]
                start = time.perf_counter()
                results = list(pool.map(visit, clients, [url] * args.clients, tones, [corners] * args.clients,
                                        [args.seconds] * args.clients))
                timings["round"].append(time.perf_counter() - start)
                for result in results:
                    for stage in STAGES:
                        timings[stage].append(result[stage])
                memory.append((f"after round {round_index + 1}", memory_mb(pid)))
                print(f"round {round_index + 1}: {timings['round'][-1]:.1f} s, "
                      f"server RSS {memory[-1][1]['VmRSS']:.0f} MiB", flush=True)

    print(f"\n{args.clients} clients x {args.rounds} rounds, 2x2 grid of {args.seconds:g} s cells, "
          f"checkpoints {checkpoints}; every request succeeded")
    print(f"{'stage':>8}  {'n':>4}  {'p50 s':>8}  {'p95 s':>8}  {'max s':>8}")
    for stage in (*STAGES, "round"):
        print(f"{stage:>8}  {percentiles(timings[stage])}")
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
