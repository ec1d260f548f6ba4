"""Computing below the web server's priority: the threads that pitch-track, encode and decode run niced, so the
thread that serves uploads, pages and files gets a core as soon as it has something to do. Decoding runs nicer
still than adding notes: a new note is a visitor's first wait and costs a second of a core, where grids take
longer anyway, so other visitors' grids should not stretch it.

Linux sets a nice value per thread (os.setpriority on the thread's id), and threads started from a niced thread
inherit it. Elsewhere nothing changes.
"""

import functools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

PER_THREAD = sys.platform.startswith("linux")  # where a thread can be niced on its own
NICE_ENV = "NSYNTH_COMPUTE_NICE"
DEFAULT_NICE = 10  # CFS gives a nice-0 thread about 9 times a nice-10 one's share of a busy core
DECODE_NICE_STEP = 5  # decoding's nice above compute_nice(): CFS weighs nice 10 against nice 15 about 3 to 1
COMPUTE_THREADS = 4  # light decodes at once (webapp/lanes.py): a few visitors' map clicks side by side


def compute_nice() -> int:
    return int(os.environ.get(NICE_ENV, DEFAULT_NICE))


def decode_nice() -> int:
    """Decoding's nice value; 0 (not niced) when compute_nice() is 0."""
    nice = compute_nice()
    return min(nice + DECODE_NICE_STEP, 19) if nice else 0


def lower_this_thread(nice: int | None = None) -> int | None:
    """Raises the calling thread's nice value to `nice`, by default compute_nice() (never lowers it: that needs
    privileges); returns the value it runs at, or None where threads cannot be niced one by one."""
    if not PER_THREAD:
        return None
    thread = threading.get_native_id()
    nice = max(os.getpriority(os.PRIO_PROCESS, thread), compute_nice() if nice is None else nice)
    os.setpriority(os.PRIO_PROCESS, thread, nice)
    return nice


def lower_this_process() -> None:
    """Raises a worker process's nice value to compute_nice()."""
    os.nice(max(compute_nice() - os.nice(0), 0))


def thread_nice() -> int | None:
    """The calling thread's nice value (Linux), to check that the niced threads are."""
    if not PER_THREAD:
        return None
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def niced_pool(workers: int, name: str, nice: int | None = None) -> ThreadPoolExecutor:
    """A thread pool whose threads run at `nice`, by default compute_nice()."""
    return ThreadPoolExecutor(workers, thread_name_prefix=name, initializer=lower_this_thread, initargs=(nice,))


@functools.cache
def decoding_pool() -> ThreadPoolExecutor:
    """The threads that run light decodes (webapp/lanes.py), started by the first decode rather than at
    import."""
    return niced_pool(COMPUTE_THREADS, "decoding", decode_nice())

