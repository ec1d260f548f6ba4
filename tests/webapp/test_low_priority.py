"""Decodes run in lanes (webapp/lanes.py): on niced threads, nicer than adding notes and heavy work nicer still,
with their caller's context (Gradio's progress and warnings), one heavy job per visitor, and a cancelled event
stops its decode."""

import asyncio
import contextvars
import inspect
import re
import threading
import time

import pytest
from gradio.context import LocalContext

from nsynth_core.engine import stopping
from webapp import lanes
from webapp.low_priority import compute_nice, decode_nice, niced_pool, thread_nice

caller = contextvars.ContextVar("caller")


class Visitor:
    def __init__(self, session_hash):
        self.session_hash = session_hash


def as_visitor(session_hash, coroutine):
    """Runs `coroutine` as Gradio runs an event of the visitor `session_hash`."""
    async def in_event():
        LocalContext.request.set(Visitor(session_hash))
        return await coroutine
    return asyncio.run(in_event())


def test_a_light_decode_runs_niced_with_its_callers_context_and_errors():
    caller.set("the page's event")
    nice, seen = as_visitor("a", lanes.in_lane()(lambda: (thread_nice(), caller.get()))())
    assert seen == "the page's event"
    if thread_nice() is not None:  # Linux
        assert nice >= decode_nice() > compute_nice()
        assert niced_pool(1, "adding-notes").submit(thread_nice).result() == max(compute_nice(), thread_nice())

    @lanes.in_lane()
    def refuses(reason):
        raise ValueError(reason)

    with pytest.raises(ValueError, match="bad input"):
        as_visitor("a", refuses("bad input"))
    assert list(inspect.signature(refuses).parameters) == ["reason"]  # Gradio reads the handler's own signature


def waits_for(release: threading.Event, started: threading.Event, decoder="WaveNet"):
    started.set()
    while not release.wait(0.01):
        stopping.checkpoint()
    return thread_nice()


def test_one_heavy_decode_per_visitor_and_light_work_passes_it():
    heavy = lanes.in_lane(heavy_when=lanes.decodes_with_wavenet)(waits_for)
    light = lanes.in_lane()(lambda: "light")
    release, started = threading.Event(), threading.Event()

    async def visit():
        first = asyncio.ensure_future(heavy(release, started))
        await asyncio.to_thread(started.wait)
        with pytest.raises(lanes.LaneBusy, match="one WaveNet grid, SoundFont or reconstruction per visitor"):
            await heavy(release, threading.Event())
        assert await light() == "light"  # not behind the visitor's own heavy decode
        LocalContext.request.set(Visitor("b"))  # another visitor's heavy decode is not refused
        second = asyncio.ensure_future(heavy(release, threading.Event()))
        await asyncio.sleep(0.05)
        release.set()
        return await first, await second

    nices = as_visitor("a", visit())
    if thread_nice() is not None:
        assert nices == (lanes.HEAVY_NICE, lanes.HEAVY_NICE)
    assert not lanes.lanes().running  # every claim released


def test_a_cancelled_event_stops_its_decode(capfd):
    heavy = lanes.in_lane(heavy_when=lanes.decodes_with_wavenet)(waits_for)
    release, started = threading.Event(), threading.Event()

    async def cancel_after_start():
        task = asyncio.ensure_future(heavy(release, started))
        await asyncio.to_thread(started.wait)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    as_visitor("a", cancel_after_start())
    deadline = time.monotonic() + 2
    while lanes.lanes().running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not lanes.lanes().running  # the decode stopped at its next check, never released
    assert not release.is_set()
    assert re.search(r"^Stopped a cancelled decode \(waits_for\) after 0\.\d s\.$", capfd.readouterr().err, re.M)
