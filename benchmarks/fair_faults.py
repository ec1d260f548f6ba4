"""The faults benchmark's rows for a class sharing one server (python -m benchmarks.faults --fair-only):

    chunked upload     one 70 MB upload sent chunked (no Content-Length), then ten chunked uploads of 19 MB
                       from one address: the answers, and the MiB Gradio's folder holds afterwards
    shared upload      one 12 MB recording uploaded once, its path on the server then sent as the note of 20
                       other sessions: how many took it, and how much the server's memory grew
    heavy + light      30 page visitors (benchmarks/page_visitor.py) clicking a map point (DDSP, 1 s) at once
                       with nothing else running; the same while one more visitor's WaveNet 9 x 9 grid of 4 s
                       decodes; and with that grid, each of the 30 clicking once at a random moment of 6 s (a class
                       at its own pace): the light clicks' seconds (median, p95, max) and the heavy one's answer
    cancel storm       six WaveNet 9 x 9 grids of 4 s, each cancelled 1 s after the first starts: seconds until the
                       server's CPU falls under a tenth of a core, then one map click's seconds
    leftovers          a partial upload of a killed run (written a moment before the start) and an empty one:
                       whether they are gone once the app answers
"""

import asyncio
import statistics
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from gradio_client import Client
from gradio_client.utils import Status

from benchmarks.load_test import PRESETS, memory_mb, server_pid
from benchmarks.page_visitor import Page, Visitor, http_client
from nsynth_core.models.checkpoint import save_checkpoint, weights_fingerprint
from nsynth_core.models.ddsp import DDSPDecoder
from nsynth_core.models.spectral import SpectralAutoencoder, SpectralConfig
from nsynth_core.models.wavenet import WaveNetAutoencoder
from tests.app_helpers import TINY_DDSP, running_app, wait_for_warm_up

LIGHT_VISITORS = 30
SHARING_SESSIONS, LONG_RECORDING_SECONDS = 20, 140  # a 140 s recording at 44.1 kHz is a 12 MB WAV
CLASS_PACE_SECONDS = 6  # a class clicking at its own pace: each visitor once, at a random moment of this window
CANCELLED_GRIDS, CANCEL_AFTER = 6, 1.0  # a grid decodes in a few seconds once the engine is built
MB = 1024 * 1024


def chunked(megabytes: int):
    yield b'--edge\r\nContent-Disposition: form-data; name="files"; filename="big.wav"\r\n\r\n'
    for _ in range(megabytes * 16):
        yield b"\0" * (64 * 1024)
    yield b"\r\n--edge--\r\n"


def chunked_upload(url: str, megabytes: int) -> str:
    answer = httpx.post(f"{url}gradio_api/upload", content=chunked(megabytes), timeout=120,
                        headers={"content-type": "multipart/form-data; boundary=edge"})
    return f"HTTP {answer.status_code}: {answer.text}"


def folder_mib(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / MB


def wavenet_grid(client: Client, corners: list[str], temperature: float):
    """A WaveNet 9 x 9 grid of 4 s; each call of a run gets its own temperature: the same grid again would be
    served from the decoded sounds the app keeps."""
    return client.submit(*corners, "grid (4 notes)", 9, "bilinear", "WaveNet", temperature, 4.0, api_name="/grid")


async def map_clicks(url: str, delays, before_the_clicks) -> list[tuple[float, str | None]]:
    """Visitors clicking a map point each, `delays` seconds after the start (as the page sends a click): the
    seconds each waited for the point's sound, and the error it saw, if any. Each has the page open first, as a
    visitor who clicks the map has (not timed); `before_the_clicks` is awaited after that."""
    page = Page(url)
    async with http_client(900) as http:
        visitors = [Visitor(page, http) for _ in delays]
        await asyncio.gather(*(visitor.call("map", "family", None, False) for visitor in visitors))
        await before_the_clicks()

        async def click(visitor: Visitor, delay: float) -> tuple[float, str | None]:
            await asyncio.sleep(delay)
            started = time.perf_counter()
            try:
                await visitor.call("play_point", 0.5, 0.5, "DDSP", "each note's own", 1.0, 0.25)
                error = None
            except Exception as failure:  # what that visitor saw: counted, not fatal to the benchmark
                error = f"{type(failure).__name__}: {failure}"[:80]
            return time.perf_counter() - started, error

        return await asyncio.gather(*(click(visitor, delay) for visitor, delay in zip(visitors, delays)))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


def seconds_until_idle(pid: int, limit: float = 300) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        before = cpu_seconds(pid)
        time.sleep(1)
        if cpu_seconds(pid) - before < 0.1:
            return time.perf_counter() - started - 1
    return limit


def fair_rows(table, work: Path, corners: list[str], kept_serving, environment):
    checkpoints = work / "fair_checkpoints"  # a WaveNet wide enough for the C++ engine: grids decode as served
    save_checkpoint(WaveNetAutoencoder(PRESETS["tiny"]), checkpoints / "engine-wavenet")
    save_checkpoint(SpectralAutoencoder(SpectralConfig.preset("cpu-small")).eval(), checkpoints / "spectral")
    save_checkpoint(DDSPDecoder(TINY_DDSP), checkpoints / "ddsp",
                    {"encoder": weights_fingerprint(checkpoints / "engine-wavenet")})
    gradio_folder = work / "fair_gradio"
    gradio_folder.mkdir()
    (gradio_folder / "tmp_killed_run").write_bytes(b"\0" * MB)  # written just now, as by a run killed midway
    (gradio_folder / "tmp_from_gradio_client").touch()
    log = work / "fair_app.log"
    with environment(GRADIO_TEMP_DIR=str(gradio_folder)), running_app(checkpoints, log) as url:
        pid = server_pid()
        left = sorted(path.name for path in gradio_folder.glob("tmp*"))
        table.add("killed-run leftovers", f"left at start: {left or 'none'}", 0, kept_serving(url, work, 50), pid)
        wait_for_warm_up(log)
        shared_upload(table, url, pid, work, kept_serving)  # before the chunked ones fill this address's budget
        started = time.perf_counter()
        seen = chunked_upload(url, 70)
        table.add("chunked upload of 70 MB", seen, time.perf_counter() - started, kept_serving(url, work, 51), pid)
        started = time.perf_counter()
        answers = [chunked_upload(url, 19) for _ in range(10)]
        table.add("10 chunked uploads of 19 MB", f"{answers[-1]} / {sum('HTTP 200' in a for a in answers)} taken, "
                  f"{folder_mib(gradio_folder):.0f} MiB stored", time.perf_counter() - started,
                  kept_serving(url, work, 52), pid)
        heavy_and_light(table, url, pid, corners, work, kept_serving)
        cancel_storm(table, url, pid, corners, work, kept_serving, log)


def shared_upload(table, url, pid, work, kept_serving):
    """One upload of a long recording, then its path on the server sent as the note of SHARING_SESSIONS visitors:
    the memory the server holds for them all."""
    recording = work / "long_recording.wav"
    seconds = np.arange(44100 * LONG_RECORDING_SECONDS) / 44100
    sf.write(recording, 0.5 * np.sin(2 * np.pi * 220 * seconds), 44100, subtype="PCM_16")
    with open(recording, "rb") as file:
        path, = httpx.post(f"{url}gradio_api/upload", files=[("files", (recording.name, file))], timeout=120).json()
    shared = [{"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": recording.name}]
    Client(url, verbose=False).predict(shared, "family", False, api_name="/add_uploads")  # the uploader's own
    before, started = memory_mb(pid)["VmRSS"], time.perf_counter()
    answers = [Client(url, verbose=False).predict(shared, "family", False, api_name="/add_uploads")[0]
               for _ in range(SHARING_SESSIONS)]
    taken = sum(recording.stem in answer for answer in answers)
    table.add(f"one {recording.stat().st_size / MB:.0f} MB upload's path sent by {SHARING_SESSIONS} more sessions",
              f"{taken} took it as their note; the server's memory grew {memory_mb(pid)['VmRSS'] - before:.0f} MiB",
              time.perf_counter() - started, kept_serving(url, work, 57), pid)


def light_clicks(url: str, spread: float, heavy_corners: list[str] | None = None,
                 temperature: float | None = None):
    """LIGHT_VISITORS visitors clicking a map point each, at once (spread 0) or each at a random moment within
    `spread` seconds, while one more visitor's WaveNet grid decodes when `heavy_corners` are given: (the clicks'
    waits sorted, their errors, the heavy grid's answer or None, the seconds until it came)."""
    delays = np.random.default_rng(0).uniform(0, spread, LIGHT_VISITORS)
    heavy, heavy_started = None, time.perf_counter()

    async def start_the_heavy_grid():  # once the light visitors have the page open
        nonlocal heavy, heavy_started
        if heavy_corners:
            heavy_started = time.perf_counter()
            heavy = wavenet_grid(Client(url, verbose=False), heavy_corners, temperature)
            await asyncio.sleep(2)  # the heavy grid is decoding

    clicks = asyncio.run(map_clicks(url, delays, start_the_heavy_grid))
    heavy_seen = None
    if heavy:
        try:
            *_, heavy_seen = heavy.result(timeout=900)
        except Exception as error:
            heavy_seen = f"{type(error).__name__}: {error}"
    return (sorted(seconds for seconds, _ in clicks), [error for _, error in clicks if error], heavy_seen,
            time.perf_counter() - heavy_started)


def heavy_and_light(table, url, pid, corners, work, kept_serving):
    """The light clicks with and without another visitor's heavy grid, at once and at a class's pace."""
    for attack, spread, heavy_corners, temperature, midi in [
            (f"{LIGHT_VISITORS} light at once, nothing else", 0, None, None, 53),
            (f"1 heavy WaveNet visitor + {LIGHT_VISITORS} light at once", 0, corners, 0.25, 54),
            (f"1 heavy WaveNet visitor + {LIGHT_VISITORS} light, each once within {CLASS_PACE_SECONDS} s",
             CLASS_PACE_SECONDS, corners, 0.26, 56)]:
        waits, errors, heavy_seen, heavy_seconds = light_clicks(url, spread, heavy_corners, temperature)
        p95 = waits[round(0.95 * (len(waits) - 1))]
        heavy_text = (f"; heavy grid {heavy_seconds:.0f} s: {' '.join(heavy_seen.split())[:60]}"
                      if heavy_seen else "")
        table.add(attack, f"light clicks median {statistics.median(waits):.2f} s, p95 {p95:.2f} s, max "
                  f"{waits[-1]:.2f} s, {len(errors)} failed {errors[:1]}{heavy_text}", p95,
                  kept_serving(url, work, midi), pid)


def cancel_storm(table, url, pid, corners, work, kept_serving, log: Path):
    visitors = [Client(url, verbose=False) for _ in range(CANCELLED_GRIDS)]
    jobs = [wavenet_grid(client, corners, 0.3 + 0.01 * index) for index, client in enumerate(visitors)]
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline and not any(job.status().code == Status.PROCESSING for job in jobs):
        time.sleep(0.05)  # cancelled once decoding, not while the grids still wait to be sent
    time.sleep(CANCEL_AFTER)
    for job in jobs:
        job.cancel()
    idle = seconds_until_idle(pid)
    (click, error), = asyncio.run(map_clicks(url, [0.0], lambda: asyncio.sleep(0)))
    stopped = [line.rsplit("after ", 1)[1] for line in log.read_text().splitlines()
               if line.startswith("Stopped a cancelled decode")]
    table.add(f"cancel storm: {CANCELLED_GRIDS} WaveNet grids cancelled after {CANCEL_AFTER} s",
              f"server idle {idle:.1f} s after the cancels; a map click then took {click:.2f} s {error or ''}; "
              f"decodes stopped mid-run (the rest before starting): {len(stopped)}, after {', '.join(stopped)}", idle,
              kept_serving(url, work, 55), pid)
