"""The faults benchmark's rows for a class sharing one server (python -m benchmarks.faults --fair-only):

    chunked upload     one 70 MB upload sent chunked (no Content-Length), then ten chunked uploads of 19 MB
                       from one address: the answers, and the MiB Gradio's folder holds afterwards
    heavy + light      one visitor's WaveNet 9 x 9 grid of 4 s, and meanwhile 30 visitors clicking a map point
                       (DDSP, 1 s) at once: the light clicks' seconds (median, p95, max) and the heavy one's answer
    cancel storm       six WaveNet 9 x 9 grids of 4 s, each cancelled 2.5 s after it is sent: seconds until the
                       server's CPU falls under a tenth of a core, then one map click's seconds
    leftovers          a partial upload of a killed run (written a moment before the start) and an empty one:
                       whether they are gone once the app answers
"""

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from gradio_client import Client

from benchmarks.load_test import PRESETS, server_pid
from nsynth_core.models.checkpoint import save_checkpoint, weights_fingerprint
from nsynth_core.models.ddsp import DDSPDecoder
from nsynth_core.models.spectral import SpectralAutoencoder, SpectralConfig
from nsynth_core.models.wavenet import WaveNetAutoencoder
from tests.app_helpers import TINY_DDSP, running_app, wait_for_warm_up

LIGHT_VISITORS = 30
CANCELLED_GRIDS, CANCEL_AFTER = 6, 2.5
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


def wavenet_grid(client: Client, corners: list[str]):
    return client.submit(*corners, "grid (4 notes)", 9, "bilinear", "WaveNet", 0.25, 4.0, api_name="/grid")


def map_click(client: Client) -> tuple[float, str | None]:
    """Seconds a visitor waits for a map point's sound, and the error they saw, if any."""
    started = time.perf_counter()
    try:
        client.predict(0.5, 0.5, "DDSP", "each note's own", 1.0, 0.25, api_name="/play_point")
        error = None
    except Exception as failure:  # what that visitor saw: counted, not fatal to the benchmark
        error = f"{type(failure).__name__}: {failure}"[:80]
    return time.perf_counter() - started, error


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


def heavy_and_light(table, url, pid, corners, work, kept_serving):
    with ThreadPoolExecutor(LIGHT_VISITORS) as pool:
        light = [Client(url, verbose=False) for _ in range(LIGHT_VISITORS)]  # one by one, as visitors arrive
        heavy_started = time.perf_counter()
        heavy = wavenet_grid(Client(url, verbose=False), corners)
        time.sleep(2)  # the heavy grid is decoding
        clicks = list(pool.map(map_click, light))
    waits = sorted(seconds for seconds, _ in clicks)
    errors = [error for _, error in clicks if error]
    p95 = waits[round(0.95 * (len(waits) - 1))]
    try:
        *_, made_by = heavy.result(timeout=900)
        heavy_seen = made_by
    except Exception as error:
        heavy_seen = f"{type(error).__name__}: {error}"
    table.add(f"1 heavy WaveNet visitor + {LIGHT_VISITORS} light", f"light clicks median "
              f"{statistics.median(waits):.2f} s, p95 {p95:.2f} s, max {waits[-1]:.2f} s, {len(errors)} failed "
              f"{errors[:1]}; heavy grid "
              f"{time.perf_counter() - heavy_started:.0f} s: {' '.join(heavy_seen.split())[:60]}", p95,
              kept_serving(url, work, 53), pid)


def cancel_storm(table, url, pid, corners, work, kept_serving, log: Path):
    jobs = [wavenet_grid(Client(url, verbose=False), corners) for _ in range(CANCELLED_GRIDS)]
    time.sleep(CANCEL_AFTER)
    for job in jobs:
        job.cancel()
    idle = seconds_until_idle(pid)
    click, error = map_click(Client(url, verbose=False))
    stopped = [line.rsplit("after ", 1)[1] for line in log.read_text().splitlines()
               if line.startswith("Stopped a cancelled decode")]
    table.add(f"cancel storm: {CANCELLED_GRIDS} WaveNet grids cancelled after {CANCEL_AFTER} s",
              f"server idle {idle:.1f} s after the cancels; a map click then took {click:.2f} s {error or ''}; "
              f"decodes stopped mid-run (the rest before starting): {len(stopped)}, after {', '.join(stopped)}", idle,
              kept_serving(url, work, 55), pid)
