"""Abuse and faults against a launched app: what the visitor saw, whether the app kept serving, and its memory.

    python -m benchmarks.faults                         # tiny random checkpoints, 16 visitors x 2 rounds
    python -m benchmarks.faults --visitors 8 --rounds 3
    python -m benchmarks.faults --restore-only          # only the restore bombs, in an app of their own

Each attack runs against `python app.py` on a loopback port over tiny random checkpoints, and is followed by one
good visitor (upload a tone and add it as a note): "kept serving" says whether that visitor was served.
    flood         200 files in one upload event
    big request   one 70 MB upload request over HTTP (the budget is 61 MB a request)
    queue         two visitors upload 16 files each, then a third one note: the rank and ETA the queue told
                  the third, against its wait to start and to be done
    NaN weights   a checkpoint whose weights hold a NaN, beside the good ones, when the app starts
    N visitors    N gradio_client visitors at once, each round: upload, add the note, a DDSP 2x2 grid of 0.25 s
    stale lock    torch's build lock, as a build killed midway leaves it, in the engine's (empty) build folder
                  before the app starts (a WaveNet wide enough for the engine); then a WaveNet grid
    full disk     Gradio's folder and the outputs folder on a 64 MB tmpfs filled to 4 MB free (root only;
                  elsewhere the disk reserve is set above the free space), then an upload and a grid; the good
                  visitor comes after the filler is removed
    restore bomb  /restore_notes given a 1.1 MB file of "saved notes" whose deflated audio.npy declares a GiB
                  (deflate), and one whose five members unpack one shared GiB stream (overlapping entries)
    and the rows for a class sharing the server (benchmarks/fair_faults.py; --fair-only runs only those)
It prints one row per attack: the answer the visitor got (shortened), its seconds, kept serving, the server's
resident memory (VmRSS, MiB) after the good visitor and, for the restore bombs, its peak while the bomb was
answered (VmHWM, reset just before) and how far that rose above the memory before.
"""

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from gradio_client import Client, handle_file

from benchmarks.fair_faults import fair_rows
from benchmarks.load_test import PRESETS, memory_mb, server_pid, visit, write_tone
from benchmarks.page_visitor import Page, Visitor, http_client
from webapp import disk_space
from nsynth_core.exports import files as exports
from nsynth_core.engine import fastgen
from nsynth_core.models.checkpoint import save_checkpoint, weights_fingerprint
from nsynth_core.models.ddsp import DDSPDecoder
from nsynth_core.explorer.notes import ASSETS_DIR, NOTES_INDEX
from nsynth_core.models.spectral import SpectralAutoencoder, SpectralConfig
from nsynth_core.models.wavenet import WaveNetAutoencoder
from tests.app_helpers import TINY_DDSP, running_app, wait_for_warm_up, write_nan_weights, write_tiny_checkpoints
from tests.archive_bombs import write_deflate_bomb, write_overlapping_bomb

TIMEOUT = 600  # s for one answer
POST_TIMEOUT = 5  # s: httpx's default, which gradio_client's uploads use
SHOWN = 110  # characters of an answer shown in the table
CORNERS = [entry["name"] for entry in json.loads((ASSETS_DIR / NOTES_INDEX).read_text())[:4]]


def shown(answer) -> str:
    """An answer as one line of the table."""
    return " ".join(str(answer).split())[:SHOWN]


def error_text(error: Exception) -> str:
    return shown(f"{type(error).__name__}: {error}")


def answer_of(call) -> tuple[str, float]:
    """What a visitor saw from `call()` (its result, or its error's message), and the seconds it took."""
    start = time.perf_counter()
    try:
        seen = shown(call())
    except Exception as error:  # the visitor's view of a refusal
        seen = error_text(error)
    return seen, time.perf_counter() - start


def upload_answer(url: str, path: Path, timeout: float = TIMEOUT) -> str:
    with open(path, "rb") as file:
        answer = httpx.post(f"{url}gradio_api/upload", files=[("files", (path.name, file))], timeout=timeout)
    return f"HTTP {answer.status_code}: {answer.text}"


def add_note(client: Client, tone: Path) -> str:
    summary, *_ = client.submit([handle_file(str(tone))], "family", False,
                                api_name="/add_uploads").result(timeout=TIMEOUT)
    return summary


def grid(client: Client, decoder: str) -> str:
    *_, made_by = client.submit(*CORNERS, "grid (4 notes)", 2, "bilinear", decoder, 1.0, 0.25,
                                api_name="/grid").result(timeout=TIMEOUT)
    return made_by


def kept_serving(url: str, work: Path, midi: int) -> bool:
    tone = write_tone(work / f"good_{midi}.wav", midi)
    try:
        return tone.stem in add_note(Client(url, verbose=False), tone)
    except Exception:
        return False


class Table:
    def __init__(self):
        self.rows = []

    def add(self, attack: str, seen: str, seconds: float, served: bool | None, pid: int, peak: str = "n/a"):
        """`served` None: not tried (a disk that stays full for the app's whole life); `peak`: the memory while
        the attack was answered, where measured (answer_and_peak)."""
        served = {True: "yes", False: "NO", None: "n/a"}[served]
        self.rows.append((attack, seen, seconds, served, memory_mb(pid)["VmRSS"], peak))
        print(f"{attack}: {seen} ({seconds:.1f} s); kept serving: {served}; peak RSS MiB {peak}", flush=True)

    def print(self):
        print("\n| attack | what the visitor saw | s | kept serving | RSS MiB | peak RSS MiB (rise) |\n"
              "|---|---|---:|---|---:|---:|")
        for attack, seen, seconds, served, rss, peak in self.rows:
            print(f"| {attack} | {seen.replace('|', '/')} | {seconds:.2f} | {served} | {rss:.0f} | {peak} |")


def flood_and_load(table: Table, work: Path, visitors: int, rounds: int):
    checkpoints = work / "checkpoints"
    write_tiny_checkpoints(checkpoints)
    write_nan_weights(checkpoints)
    with running_app(checkpoints, work / "app.log") as url:
        pid, client = server_pid(), Client(url, verbose=False)
        skipped = next(line for line in (work / "app.log").read_text().splitlines() if "nan_weights" in line)
        table.add("NaN weights", skipped, 0.0, kept_serving(url, work, 50), pid)

        flood = [write_tone(work / f"flood_{i}.wav", 30 + i % 60) for i in range(200)]
        seen, seconds = answer_of(lambda: add_note_many(client, flood))
        table.add("flood: 200 files in one upload", seen, seconds, kept_serving(url, work, 51), pid)

        big = work / "big.bin"
        big.write_bytes(os.urandom(70 * disk_space.MB))
        seen, seconds = answer_of(lambda: upload_answer(url, big))
        table.add("big request: 70 MB", seen, seconds, kept_serving(url, work, 52), pid)

        wait_for_warm_up(work / "app.log")
        table.add(*queue_honesty(url, work), kept_serving(url, work, 56), pid)

        start = time.perf_counter()
        timings, failures = asyncio.run(visiting_class(url, work, visitors, rounds))
        p95 = {stage: np.percentile(values, 95) if values else float("nan") for stage, values in timings.items()}
        seen = (f"{visitors * rounds - len(failures)} of {visitors * rounds} visits served; encode p95 "
                f"{p95['encode']:.1f} s, grid p95 {p95['grid']:.1f} s" + (f"; first failure: {failures[0]}"
                                                                          if failures else ""))
        table.add(f"{visitors} visitors x {rounds} rounds", seen, time.perf_counter() - start,
                  kept_serving(url, work, 53), pid)


async def visiting_class(url: str, work: Path, visitors: int, rounds: int) -> tuple[dict, list[str]]:
    """Rounds of a class each adding a note and decoding a DDSP grid at once: (seconds per stage, failures)."""
    timings, failures = {"encode": [], "grid": []}, []
    page = Page(url)
    async with http_client(TIMEOUT) as http:
        members = [Visitor(page, http) for _ in range(visitors)]
        for round_index in range(rounds):
            tones = [write_tone(work / f"visitor{i}_round{round_index}.wav", 40 + i + visitors * round_index)
                     for i in range(visitors)]
            for result in await asyncio.gather(*(visit(member, tone, CORNERS[:3], 0.25, "DDSP")
                                                 for member, tone in zip(members, tones)), return_exceptions=True):
                if isinstance(result, Exception):
                    failures.append(error_text(result))
                else:
                    for stage in timings:
                        timings[stage].append(result[stage])
    return timings, failures


async def one_note(url: str, tone: Path):
    """A visitor posting one file and adding it as a note: (the post's answer, its seconds, what the queue told
    the note)."""
    async with http_client(POST_TIMEOUT) as http:
        visitor = Visitor(Page(url), http)
        start = time.perf_counter()
        try:
            uploaded = await visitor.upload(tone)
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: {error}", time.perf_counter() - start, None
        post_seconds = time.perf_counter() - start
        http.timeout = httpx.Timeout(TIMEOUT)
        _, told = await visitor.call("add_uploads", [uploaded], "family", False)
        return "HTTP 200", post_seconds, told


def queue_honesty(url: str, work: Path) -> tuple[str, str, float]:
    """Two visitors upload 16 files each, then a third posts one small file and adds it as a note: how long the
    post took while the 32 files were worked on, what the queue and the app told the third (Gradio's rank and
    ETA, the app's own estimate) against how long it waited to start and to be done."""
    heavy = [[write_tone(work / f"heavy{visitor}_{i}.wav", 30 + 16 * visitor + i) for i in range(16)]
             for visitor in range(2)]
    jobs = [Client(url, verbose=False).submit([handle_file(str(path)) for path in files], "family", False,
                                              api_name="/add_uploads") for files in heavy]
    time.sleep(2.0)  # both heavy uploads are being worked on first
    tone = write_tone(work / "light.wav", 70)
    failures = []  # a visitor that fails (e.g. a client timeout under load) is part of what the row reports
    start = time.perf_counter()
    posted, post_seconds, told = "not posted", 0.0, None
    try:
        posted, post_seconds, told = asyncio.run(one_note(url, tone))
    except Exception as error:
        failures.append(error_text(error))
    if not posted.startswith("HTTP 200"):
        failures.append(f"the small file's post: {posted}")
    done = time.perf_counter() - start
    for heavy_job in jobs:
        try:
            heavy_job.result(timeout=TIMEOUT)
        except Exception as error:
            failures.append(error_text(error))
    failed_text = f"; {len(failures)} failed, first: {failures[0]}" if failures else ""
    attack = "queue: 2 uploads of 16 files, then 1 note"
    post_text = f"a 32 kB post took {post_seconds:.2f} s"
    if told is None:
        return attack, f"{post_text}; the note was not served{failed_text}", done
    rank_text = "no rank" if told.rank is None else f"rank {told.rank}"
    eta_text = "no ETA" if told.eta is None else f"ETA {told.eta:.1f} s"
    said = (f"the app said '{told.said}' after {told.said_at:.1f} s; done {told.done - told.said_at:.1f} s later"
            if told.said else "the app gave no estimate in seconds")
    return (attack, f"{post_text}; the note was told {rank_text}, {eta_text}; started after {told.started:.1f} s; "
            f"{said}; done after {done:.1f} s{failed_text}", done)


def queue_alone(table: Table, work: Path):
    checkpoints = work / "checkpoints"
    write_tiny_checkpoints(checkpoints)
    with running_app(checkpoints, work / "app.log") as url:
        pid = server_pid()
        wait_for_warm_up(work / "app.log")
        kept_serving(url, work, 57)  # not timed: the first note placed on a map computed here compiles UMAP's code
        table.add(*queue_honesty(url, work), kept_serving(url, work, 56), pid)


def add_note_many(client: Client, files: list[Path]) -> str:
    summary, *_ = client.submit([handle_file(str(path)) for path in files], "family", False,
                                api_name="/add_uploads").result(timeout=TIMEOUT)
    return summary


def stale_lock(table: Table, work: Path):
    checkpoints = work / "lock_checkpoints"  # a WaveNet wide enough for the engine, so its build is needed
    save_checkpoint(WaveNetAutoencoder(PRESETS["tiny"]), checkpoints / "engine-wavenet")
    save_checkpoint(SpectralAutoencoder(SpectralConfig.preset("cpu-small")).eval(), checkpoints / "spectral")
    save_checkpoint(DDSPDecoder(TINY_DDSP), checkpoints / "ddsp",
                    {"encoder": weights_fingerprint(checkpoints / "engine-wavenet")})
    extensions = work / "torch_extensions"
    build = fastgen.build_directory(root=extensions)
    build.mkdir(parents=True)
    (build / fastgen.TORCH_LOCK_FILE).write_text("")
    log = work / "lock_app.log"
    with environment(TORCH_EXTENSIONS_DIR=str(extensions)), running_app(checkpoints, log) as url:
        pid = server_pid()
        seen, seconds = answer_of(lambda: grid(Client(url, verbose=False), "WaveNet"))
        said = [line for line in log.read_text().splitlines() if "build lock" in line or "C++ engine" in line]
        table.add("stale engine build lock", f"{seen} / log: {' / '.join(said)}", seconds,
                  kept_serving(url, work, 54), pid)


def full_disk(table: Table, work: Path):
    folder = work / "small_disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    checkpoints = work / "disk_checkpoints"
    write_tiny_checkpoints(checkpoints)
    filler = folder / "filler"
    reserve = "8" if mounted else str(10 ** 9)
    try:
        with environment(GRADIO_TEMP_DIR=str(folder / "gradio"), **{exports.OUTPUTS_ENV: str(folder / "outputs"),
                                                                      disk_space.RESERVE_ENV: reserve}), \
                running_app(checkpoints, work / "disk_app.log") as url:
            pid, client = server_pid(), Client(url, verbose=False)
            if mounted:
                room = disk_space.free_bytes(folder) - 4 * disk_space.MB
                subprocess.run(["fallocate", "-l", str(room), str(filler)], check=True)
            tone = write_tone(work / "disk_tone.wav", 60)
            seen_upload, seconds = answer_of(lambda: upload_answer(url, tone))
            seen_grid, grid_seconds = answer_of(lambda: grid(client, "DDSP"))
            filler.unlink(missing_ok=True)
            partial = disk_space.partial_uploads(folder / "gradio")
            where = "a 64 MB tmpfs with 4 MB free" if mounted else "the reserve above the free space"
            table.add(f"full disk ({where})", f"upload: {seen_upload[:70]} / grid: {seen_grid[:60]} / partial "
                      f"uploads left: {len(partial)}", seconds + grid_seconds,
                      kept_serving(url, work, 55) if mounted else None, pid)
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)])


def restore_bombs(table: Table, work: Path):
    checkpoints = work / "restore_checkpoints"
    write_tiny_checkpoints(checkpoints)
    with running_app(checkpoints, work / "restore_app.log") as url:
        pid, client = server_pid(), Client(url, verbose=False)
        for attack, write, midi in [("restore bomb: deflate", write_deflate_bomb, 58),
                                    ("restore bomb: overlapping entries", write_overlapping_bomb, 59)]:
            bomb = work / "saved_notes.npz"
            write(bomb)
            seen, seconds, peak = answer_and_peak(pid, lambda: client.submit(
                handle_file(str(bomb)), "family", False, api_name="/restore_notes").result(timeout=TIMEOUT))
            table.add(f"{attack} ({bomb.stat().st_size / disk_space.MB:.1f} MB)", seen, seconds,
                      kept_serving(url, work, midi), pid, peak)


def answer_and_peak(pid: int, call) -> tuple[str, float, str]:
    """answer_of(call), and the server's peak resident memory meanwhile with its rise above the memory before,
    in MiB (Linux's clear_refs starts VmHWM afresh from VmRSS)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = memory_mb(pid)["VmRSS"]
    seen, seconds = answer_of(call)
    peak = memory_mb(pid)["VmHWM"]
    return seen, seconds, f"{peak:.0f} (+{peak - before:.0f})"


@contextlib.contextmanager
def environment(**values):
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--queue-only", action="store_true", help="only the queue row, in an app of its own")
    parser.add_argument("--restore-only", action="store_true", help="only the restore bombs, in an app of their own")
    parser.add_argument("--fair-only", action="store_true",
                        help="only the rows of benchmarks/fair_faults.py (a class sharing the server)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nsynth-faults-"))
    table = Table()
    started = time.perf_counter()
    if args.queue_only:
        queue_alone(table, work)
    elif args.restore_only:
        restore_bombs(table, work)
    elif args.fair_only:
        fair_rows(table, work, CORNERS, kept_serving, environment)
    else:
        flood_and_load(table, work, args.visitors, args.rounds)
        stale_lock(table, work)
        full_disk(table, work)
        restore_bombs(table, work)
        fair_rows(table, work, CORNERS, kept_serving, environment)
    table.print()
    print(f"\n{time.perf_counter() - started:.0f} s in all; load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} CPUs; logs in {work}")


if __name__ == "__main__":
    main()
