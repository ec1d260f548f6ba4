"""The page as a server: the process's memory and thread settings, the work done once at start (the C++ engine's
build, a warm-up so a visitor's first click and first estimate are quick), the API a caller sees, and the launch
settings (style, upload limits, paths never served, the upload middleware)."""

import ctypes
import dataclasses
import math
import os
import sys
import threading
import time
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from starlette.middleware import Middleware

from nsynth_core.audio.core import NOTE_LENGTH
from nsynth_core.audio.rainbowgram import rainbowgram
from nsynth_core.engine import fastgen
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.loaded_models import broken_checkpoints, encode_notes, load_model
from nsynth_core.explorer.notes import ASSETS_DIR, MAX_REQUEST_UPLOAD_MB, MAX_SESSION_NOTES, estimated_pitches
from webapp.texts import WARM_UP_DONE
from webapp import disk_space, encoding_queue, low_priority
from webapp.shared import DECODERS, MAX_UPLOAD_FILE_MB, default_checkpoint

REPO = Path(__file__).resolve().parent.parent
UPLOAD_REQUEST_MB = MAX_REQUEST_UPLOAD_MB + 1  # the files of one upload and the form around them
MAX_SESSIONS = 500  # sessions kept in memory, each holding up to MAX_SESSION_NOTES notes of 256 kB
QUEUE_SIZE = 256  # events waiting in Gradio's queue (decodes wait in webapp/lanes.py instead): a class at once
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters (malloc.h)
PUBLIC_API = {"add_uploads", "add_recording", "save_notes", "restore_notes", "correct_pitch", "map", "select_note",
              "grid", "reconstruct", "play_point", "soundfont", "decode_for_playing"}


def page_css() -> str:
    """The page's styles: every file of assets/css, in name order."""
    return "\n".join(path.read_text() for path in sorted((ASSETS_DIR / "css").glob("*.css")))


def tune_process() -> None:
    """Settings for the whole process, made before the server's threads start."""
    # Generation is a long chain of small tensor operations: on a shared 2-core machine a second thread mostly
    # waits.
    torch.set_num_threads(int(os.environ.get("NSYNTH_THREADS", "1")))
    keep_memory_flat()


def keep_memory_flat():
    """glibc keeps freed large arrays in per-thread arenas and raises its mmap threshold after each big free, so
    a threaded server's memory creeps up request after request (benchmarks/load_test.py: about +35 MB a round of
    8 visitors). Two arenas and a fixed threshold, which hands large arrays back to the system when freed, leave
    only the visitors' own notes to grow it."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(M_ARENA_MAX, 2)
    mallopt(M_MMAP_THRESHOLD, 128 * 1024)


def warm_up(explorer: Explorer, notes_queue: encoding_queue.FairBatchQueue):
    """Load the default WaveNet and its map (the first UMAP placement compiles for seconds), encode the examples
    (so a click between notes on the map only decodes), and time every default decoder, so the first estimate of
    a decode is a measured one. Then a batch of notes no visitor has (examples played upside down) goes through the
    notes' queue, pitched and encoded as uploads are (in bfloat16 where the CPU has it, where the examples' own
    codes stay float32, as the shipped map was made), so an upload's first estimate is measured too, on a machine
    no longer busy warming up (the pitch process starts, and pYIN's tracker compiles there, on one note first)."""
    low_priority.lower_this_thread()
    started = time.monotonic()
    examples = list(explorer.bundled.values())
    encoding_queue.pitch_process().submit(estimated_pitches, [examples[0].audio]).result()
    wavenet = default_checkpoint(explorer, "wavenet")
    if wavenet:
        explorer.map_for(load_model(wavenet))
        encode_notes(load_model(wavenet), examples)
    for kind in DECODERS.values():
        if path := default_checkpoint(explorer, kind):
            load_model(path).decoding.probe()
    if wavenet:
        upside_down = [dataclasses.replace(note, id=f"{note.id}-upside-down", audio=-note.audio, source="upload")
                       for note in examples[:notes_queue.batch_size]]
        notes_queue.run("warm-up", load_model(wavenet), upside_down)
    print(f"{WARM_UP_DONE} in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


def start_background_work(explorer: Explorer, notes_queue: encoding_queue.FairBatchQueue) -> None:
    """What runs once as the server starts: said in its log, and the slow first steps done before a visitor
    waits on them."""
    if (nice := low_priority.compute_nice()) and low_priority.PER_THREAD:
        print(f"Pitch tracking and encoding run at nice {nice}, decoding at nice {low_priority.decode_nice()}, "
              "below the web server.", file=sys.stderr)
    fastgen.start_build()  # the first start compiles for up to minutes: not on a visitor's first decode
    for name, problem in broken_checkpoints(explorer.checkpoints_dir).items():
        print(f"Skipped checkpoint {name}: {problem}", file=sys.stderr)
    threading.Thread(target=warm_up, args=(explorer, notes_queue), daemon=True).start()
    # librosa's first constant-Q transform takes seconds: not on the first rainbowgram a visitor asks for.
    threading.Thread(target=rainbowgram, args=(np.zeros(NOTE_LENGTH, np.float32),), daemon=True).start()
    # An earlier run stopped mid-upload (a full disk, a kill) leaves Gradio's partial files behind, and so does
    # an upload abandoned midway: removed now and from time to time.
    threading.Thread(target=disk_space.sweep_leftovers, args=(threading.Event(),), daemon=True).start()


def reads_numbers_in_words(field: gr.Slider | gr.Number) -> None:
    """Makes a Slider or Number read an API caller's "3.0" as 3.0 and refuse anything that is not a finite number
    in words: Gradio's own range check fails on text with a bare "Error" and lets NaN through. (Set on the
    component, not by subclassing it: Gradio writes a .pyi stub beside any module that defines a component.)"""
    gradio_preprocess = field.preprocess

    def preprocess(payload):
        if payload is None and field.value is None:  # a field that starts empty may be left empty
            return None
        number = payload  # a number from the page keeps its type (an int stays one)
        if isinstance(payload, str):
            try:
                number = float(payload)
            except ValueError:
                number = math.nan
        if not isinstance(number, int) and not (isinstance(number, float) and math.isfinite(number)):
            raise gr.Error(f"{field.label} must be a number, not {payload!r}.", print_exception=False)
        return gradio_preprocess(number)

    field.preprocess = preprocess


def guard_api(page: gr.Blocks) -> None:
    """The API offers what a caller would call; the page's own wiring (estimates, redraws, steps) stays private.
    Every number field reads numbers sent as text and refuses the rest in words."""
    for event in page.fns.values():
        if event.api_name not in PUBLIC_API:
            event.api_visibility = "private"
    for block in page.blocks.values():
        if isinstance(block, (gr.Slider, gr.Number)):
            reads_numbers_in_words(block)


def preload_plotting_library() -> str:
    """The page's head fetches Gradio's plotly bundle as the page starts rather than once a plot has a value."""
    bundles = (Path(gr.__file__).parent / "templates" / "frontend" / "assets").glob("PlotlyPlot-*.js")
    return "".join(f'<link rel="modulepreload" href="assets/{bundle.name}">' for bundle in sorted(bundles))


def launch(page: gr.Blocks, explorer: Explorer, routes=()) -> None:
    """Serves the page until the process ends (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose where), with
    `routes` (starlette routes) beside Gradio's own."""
    # Gradio serves only its own cache and uploads; blocking the code and the weights keeps it so whatever
    # allowed_paths or GRADIO_ALLOWED_PATHS say (Gradio's cache, GRADIO_TEMP_DIR, must lie outside both).
    page.queue(default_concurrency_limit=2, max_size=QUEUE_SIZE).launch(
        css=page_css(), head=preload_plotting_library(), max_file_size=f"{MAX_UPLOAD_FILE_MB}mb",
        state_session_capacity=MAX_SESSIONS,
        blocked_paths=[str(REPO), str(explorer.checkpoints_dir.resolve())],
        app_kwargs={"routes": list(routes), "middleware": [Middleware(disk_space.UploadRoomMiddleware,
                                                                      max_request_bytes=UPLOAD_REQUEST_MB * disk_space.MB,
                                                                      max_file_mb=MAX_UPLOAD_FILE_MB)]})
