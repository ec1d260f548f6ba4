"""Computing below the web server's priority: the threads that pitch-track, encode and decode run niced, so the
thread that serves uploads, pages and files gets a core as soon as it has something to do.

Linux sets a nice value per thread (os.setpriority on the thread's id), and threads started from a niced thread
inherit it. Elsewhere nothing changes.
"""

import contextvars
import functools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

NICE_ENV = "NSYNTH_COMPUTE_NICE"
DEFAULT_NICE = 10  # CFS gives a nice-0 thread about 9 times a nice-10 one's share of a busy core
COMPUTE_THREADS = 4  # decoding handlers at once: the decode events take one at a time, their follow-ups a few more


def compute_nice() -> int:
    return int(os.environ.get(NICE_ENV, DEFAULT_NICE))


def lower_this_thread() -> int | None:
    """Raises the calling thread's nice value to compute_nice() (never lowers it: that needs privileges);
    returns the value it runs at, or None where threads cannot be niced one by one."""
    if not sys.platform.startswith("linux"):
        return None
    thread = threading.get_native_id()
    nice = max(os.getpriority(os.PRIO_PROCESS, thread), compute_nice())
    os.setpriority(os.PRIO_PROCESS, thread, nice)
    return nice


def thread_nice() -> int | None:
    """The calling thread's nice value (Linux), to check that the niced threads are."""
    if not sys.platform.startswith("linux"):
        return None
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


_pool = ThreadPoolExecutor(COMPUTE_THREADS, thread_name_prefix="compute", initializer=lower_this_thread)


def at_low_priority(handler):
    """Runs `handler` on a niced thread while the caller waits; the caller's context (Gradio's progress and
    warnings) goes with it."""
    @functools.wraps(handler)
    def wrapped(*args, **kwargs):
        return _pool.submit(contextvars.copy_context().run, handler, *args, **kwargs).result()
    return wrapped
