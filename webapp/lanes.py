"""Fair decoding for a class on one server: each visitor's long decodes (WaveNet grids, multigrids and
SoundFonts, reconstructions) wait in a lane of their own, so a map click or a DDSP grid never waits behind another
visitor's minutes of WaveNet, and a decode whose visitor cancels stops instead of running on for no one.

- Light work (a map point, DDSP or spectral cells) runs on the decoding threads (low_priority.decoding_pool).
- Heavy work runs on threads of its own (HEAVY_THREADS, niced below the light ones), one job per visitor at a
  time: a second is refused with a sentence. A visitor may have LIGHT_PER_VISITOR light jobs waiting or running.
- Handlers are coroutines to Gradio: their events need no Gradio concurrency limit (DECODE_EVENT), so Gradio's
  queue never fills with decodes, and a cancelled event (the page's or an API caller's) sets the job's stop event:
  the core raises DecodeStopped at its next chunk (nsynth_core/engine/stopping.py).
"""

import asyncio
import contextvars
import functools
import inspect
import sys
import threading
import time
from collections import Counter

from gradio.context import LocalContext

from nsynth_core.engine import stopping
from nsynth_core.explorer.loaded_models import SLOW_DECODE_SECONDS
from webapp import low_priority

HEAVY_THREADS = 2  # heavy jobs of different visitors decoding at once (more share the same cores more thinly)
HEAVY_NICE = 19  # the lowest priority: light work and the web server come first
LIGHT_PER_VISITOR = 4  # a visitor's light decodes at once (a burst of map clicks beyond this is refused)
DECODE_EVENT = {"concurrency_id": "decode", "concurrency_limit": None}  # the lanes, not Gradio's queue, take turns


class LaneBusy(ValueError):
    """The visitor already has as much work running as a visitor may."""


class Lanes:
    """Who has how much work in which lane; claims are made on the event loop and released by the threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running: Counter = Counter()  # (visitor, heavy) -> jobs

    def claim(self, visitor: str, heavy: bool) -> None:
        with self.lock:
            if heavy and self.running[visitor, True]:
                raise LaneBusy("Your long decode is still running: wait for it, or stop it, before starting "
                               "another (one WaveNet grid, SoundFont or reconstruction per visitor at a time).")
            if not heavy and self.running[visitor, False] >= LIGHT_PER_VISITOR:
                raise LaneBusy(f"You have {LIGHT_PER_VISITOR} decodes waiting already: wait for them before asking "
                               "for more.")
            self.running[visitor, heavy] += 1

    def release(self, visitor: str, heavy: bool) -> None:
        with self.lock:
            self.running[visitor, heavy] -= 1
            if not self.running[visitor, heavy]:
                del self.running[visitor, heavy]


@functools.cache
def lanes() -> Lanes:
    """Every visitor's claims, made with the first decode rather than at import."""
    return Lanes()


@functools.cache
def heavy_pool():
    return low_priority.niced_pool(HEAVY_THREADS, "heavy-decoding", HEAVY_NICE)


def visitor() -> str:
    """The visitor of the event being handled: its session (the browser tab or API client)."""
    request = LocalContext.request.get(None)
    return getattr(request, "session_hash", None) or "anonymous"


def run_stoppable(cancelled: threading.Event, handler, *args, **kwargs):
    """`handler` stopped at its next chunk once `cancelled` is set; the time limit is measured on the decode
    itself, whatever its estimate said before it started."""
    started = time.monotonic()
    try:
        with stopping.stoppable(cancelled, SLOW_DECODE_SECONDS):
            return handler(*args, **kwargs)
    except stopping.DecodeStopped:
        if not cancelled.is_set():
            raise  # over its time: the visitor is told why
        print(f"Stopped a cancelled decode ({handler.__name__}) after {time.monotonic() - started:.1f} s.",
              file=sys.stderr, flush=True)
        return None


def in_lane(heavy_when=None):
    """Runs the decorated handler (a decode) in the visitor's light lane, or in the heavy one when
    `heavy_when(arguments)` is true (the handler's arguments by name). The caller's context (Gradio's progress
    and warnings) goes with it; cancelling the event stops the decode at its next chunk."""
    def decorate(handler):
        signature = inspect.signature(handler)

        @functools.wraps(handler)
        async def wrapped(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs)
            arguments.apply_defaults()
            heavy = bool(heavy_when and heavy_when(arguments.arguments))
            who, cancelled = visitor(), threading.Event()
            lanes().claim(who, heavy)
            pool = heavy_pool() if heavy else low_priority.decoding_pool()
            future = pool.submit(contextvars.copy_context().run, run_stoppable, cancelled, handler, *args, **kwargs)
            future.add_done_callback(lambda _: lanes().release(who, heavy))
            try:
                return await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                cancelled.set()
                future.cancel()  # not started yet: it never will
                raise
        return wrapped
    return decorate


def decodes_with_wavenet(arguments) -> bool:
    return arguments.get("decoder") == "WaveNet"


def always(arguments) -> bool:
    return True
