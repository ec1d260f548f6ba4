"""One fair worker for the costly part of adding notes: each note's pitch (pYIN) and its WaveNet code.

Every visitor's upload hands its notes to the same queue and waits only for its own. The worker serves the
visitors round-robin, one note each in turn, so one note is not stuck behind somebody's 16 files, and encodes
the notes that wait together in one batch (split over the cores) while a process of its own searches their
pitches. It runs at low priority (low_priority.py), so the web server stays responsive while it works. A waiting
request can ask where it stands: the notes ahead of it and, once a few batches have been timed, about how long
until its own are done.
"""

import functools
import math
import multiprocessing
import multiprocessing.connection
import os
import statistics
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Callable, Hashable

from nsynth_core.explorer import family_guess
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.loaded_models import ENCODE_BATCH, LoadedModel, encode_notes
from nsynth_core.explorer.notes import Note, estimated_pitches
from webapp.low_priority import lower_this_process, lower_this_thread, niced_pool

RECENT_BATCHES = 8  # the cost per note: the median over this many recent batches, so one slow batch does not sway it
REPORT_EVERY = 0.5  # s between reports to a waiting request
CORES = os.cpu_count() or 1


@dataclass
class Request:
    owner: Hashable  # who asked (a visitor's session): the unit of fairness
    group: object  # items are batched only with items of the same group (the same encoder)
    items: list
    results: list = field(default_factory=list)
    left: int = 0  # items not yet done
    error: Exception | None = None
    done: bool = False


@dataclass(frozen=True)
class Position:
    ahead: int  # other requests' items the worker will take before this request's are done
    left: int  # this request's own items not yet done
    total: int  # this request's items
    seconds: float | None  # about how long until this request is done; None until batches have been timed

    def __str__(self) -> str:
        if self.ahead:
            said = f"{self.ahead} note{'s' if self.ahead > 1 else ''} ahead of yours"
        else:
            said = f"finding the pitch and code of your {self.left} note{'s' if self.left > 1 else ''}"
        return said + (f", about {max(1, round(self.seconds))} s" if self.seconds is not None else "")


@dataclass(frozen=True)
class _Task:
    request: Request
    index: int


class FairBatchQueue:
    """`process(group, items) -> results` (one per item) run on one niced thread, over batches of up to
    `batch_size` items taken round-robin across owners. A batch that fails is retried item by item, so only the
    request whose item fails gets the error."""

    def __init__(self, process: Callable[[object, list], list], batch_size: int = ENCODE_BATCH):
        self.process = process
        self.batch_size = batch_size
        self._changed = threading.Condition()
        self._waiting: OrderedDict[Hashable, deque[_Task]] = OrderedDict()  # next owner to serve first
        self._in_flight: list[_Task] = []
        self._costs: deque[tuple[int, float]] = deque(maxlen=RECENT_BATCHES)  # (items, seconds) per batch
        self._worker: threading.Thread | None = None
        self._batch_started = 0.0  # perf_counter() when the batch under way began

    def submit(self, owner: Hashable, group, items: list) -> Request:
        request = Request(owner, group, list(items), [None] * len(items), len(items))
        with self._changed:
            if not request.items:
                request.done = True
                return request
            self._waiting.setdefault(owner, deque()).extend(_Task(request, i) for i in range(len(items)))
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="encoding-queue", daemon=True)
                self._worker.start()
            self._changed.notify_all()
        return request

    def wait(self, request: Request, report: Callable[[Position], None] | None = None) -> list:
        """The request's results in order, once all are done (its first error raised instead); `report` is
        told where the request stands every REPORT_EVERY s meanwhile."""
        while True:
            with self._changed:
                if request.done:
                    break
                position = self.position(request)
            if report:
                report(position)
            with self._changed:
                if not request.done:
                    self._changed.wait(REPORT_EVERY)
        if request.error is not None:
            raise request.error
        return request.results

    def run(self, owner: Hashable, group, items: list, report: Callable[[Position], None] | None = None) -> list:
        return self.wait(self.submit(owner, group, items), report)

    def position(self, request: Request) -> Position:
        """Round-robin: before this request's last item, each other owner gets at most one item per turn of its
        owner's, so at most as many items as its owner still has pending up to and including this request. The
        estimate counts what the worker must process until then: what is left of the batch under way, and the
        batches up to the one that holds that last item."""
        with self._changed:
            own = self._waiting.get(request.owner, ())
            turns = next((i + 1 for i in range(len(own) - 1, -1, -1) if own[i].request is request), 0)
            queued_ahead = sum(min(len(tasks), turns) for owner, tasks in self._waiting.items()
                               if owner != request.owner)
            queued_ahead += turns - sum(task.request is request for task in own)  # the owner's earlier requests
            ahead = queued_ahead + sum(task.request is not request for task in self._in_flight)
            last = queued_ahead + sum(task.request is request for task in own)  # place of its last queued item
            pending = sum(len(tasks) for tasks in self._waiting.values())
            queued = min(math.ceil(last / self.batch_size) * self.batch_size, pending)
            cost = self.seconds_per_item()
            if cost is None:
                return Position(ahead, request.left, len(request.items), None)
            under_way = max(len(self._in_flight) * cost - (time.perf_counter() - self._batch_started), 0.0)
            return Position(ahead, request.left, len(request.items), under_way + queued * cost)

    def seconds_per_item(self) -> float | None:
        with self._changed:
            return statistics.median(seconds / count for count, seconds in self._costs) if self._costs else None

    def _next_batch(self) -> list[_Task]:
        """Up to batch_size tasks of one group, one per owner in turn; each owner served goes to the back."""
        batch, group = [], None
        while len(batch) < self.batch_size:
            taken = False
            for owner in list(self._waiting):
                tasks = self._waiting[owner]
                if group is None:
                    group = tasks[0].request.group
                if tasks[0].request.group is not group or len(batch) == self.batch_size:
                    continue
                batch.append(tasks.popleft())
                taken = True
                self._waiting.move_to_end(owner)
                if not tasks:
                    del self._waiting[owner]
            if not taken:
                return batch
        return batch

    def _work(self) -> None:
        lower_this_thread()
        while True:
            with self._changed:
                while not self._waiting:
                    self._changed.wait()
                batch = self._in_flight = self._next_batch()
                self._batch_started = time.perf_counter()
            outcomes = self._outcomes(batch)
            seconds = time.perf_counter() - self._batch_started
            with self._changed:
                if not any(isinstance(outcome, Exception) for outcome in outcomes):
                    self._costs.append((len(batch), seconds))
                for task, outcome in zip(batch, outcomes):
                    self._deliver(task, outcome)
                self._in_flight = []
                self._changed.notify_all()

    def _outcomes(self, batch: list[_Task]) -> list:
        group = batch[0].request.group
        items = [task.request.items[task.index] for task in batch]
        try:
            return list(self.process(group, items))
        except Exception as error:
            if len(batch) == 1:
                return [error]
        outcomes = []
        for item in items:
            try:
                outcomes.append(self.process(group, [item])[0])
            except Exception as error:
                outcomes.append(error)
        return outcomes

    def _deliver(self, task: _Task, outcome) -> None:
        request = task.request
        if request.done:  # an earlier item of it failed
            return
        if isinstance(outcome, Exception):
            request.error, request.done = outcome, True
            self._drop(request)
            return
        request.results[task.index] = outcome
        request.left -= 1
        request.done = request.left == 0

    def _drop(self, request: Request) -> None:
        """Forgets the pending items of a request that has failed."""
        tasks = self._waiting.get(request.owner)
        if tasks is None:
            return
        kept = deque(task for task in tasks if task.request is not request)
        if kept:
            self._waiting[request.owner] = kept
        else:
            del self._waiting[request.owner]


@functools.cache
def encoding_pool() -> ThreadPoolExecutor:
    """One niced thread per core for the parts of a batch, started by the first batch rather than at import."""
    return niced_pool(CORES, "encoding")


@functools.cache
def pitch_process() -> ProcessPoolExecutor:
    """A niced process of its own for the pitch search, started by the first batch (spawned: never a fork of a
    process whose threads hold locks)."""
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_pitch_process_start)


def _pitch_process_start() -> None:
    """In the pitch process: niced, and gone as soon as the server is (a worker holds both ends of its task queue,
    so a server killed by a signal would leave it waiting for work for ever)."""
    lower_this_process()
    server = multiprocessing.parent_process().sentinel
    threading.Thread(target=lambda: (multiprocessing.connection.wait([server]), os._exit(0)), daemon=True).start()


def pitch_and_encode(wavenet: LoadedModel | None, notes: list[Note]) -> list[Note]:
    """The notes with their pitch found and, when there is a WaveNet, their Z (EncodedNotes), in the precision of a
    visitor's notes (bfloat16 where the CPU has it: loaded_models.encoding_precision).

    The pitch search runs in a process of its own: pYIN's compiled Viterbi pass holds Python's interpreter lock,
    and the encoder's thread needs that lock back after each of its products, so beside a pitch search in the same
    process an encode took 2 to 4 times as long. The app runs each torch operation on one thread (the fastest for
    decoding), so the batch is encoded in one part per core, each on a thread of its own."""
    size = math.ceil(len(notes) / CORES) if notes else 1
    parts = [notes[start:start + size] for start in range(0, len(notes), size)]
    try:
        pitches = pitch_process().submit(estimated_pitches, [note.audio for note in notes])
        encoded = encoding_pool().map(lambda part: encode_notes(wavenet, part) if wavenet is not None else part,
                                      parts)
        encoded = [note for part in encoded for note in part]
        found = pitches.result()
    except BrokenProcessPool:  # the process was killed (out of memory, say): the next batch starts another
        pitch_process.cache_clear()
        raise
    return [replace(note, pitch=pitch) for note, pitch in zip(encoded, found)]


def prepared_notes(explorer: Explorer, wavenet: LoadedModel | None, notes: list[Note]) -> list[Note]:
    """What adding notes costs, done once for all the notes that wait together: pitch and Z and, once the map is
    ready, the family guess and the place on the map (which the explorer keeps for every redraw after), each
    taken from the Z the notes carry. Each visitor's own request then has only its map to draw."""
    notes = pitch_and_encode(wavenet, notes)
    if wavenet is not None and explorer.has_map(wavenet):
        notes = family_guess.with_guesses(explorer, wavenet, notes)
        explorer.place_notes(wavenet, notes)
    return notes

