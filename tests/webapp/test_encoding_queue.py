"""The shared queue that pitch-tracks and encodes visitors' notes: fair between visitors, batched, honest about
where a request stands, and unharmed by one request's failure. A gate holds the worker in its first batch, so
what waits behind it is known exactly (no timing)."""

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from nsynth_core.engine.precision import ENCODER_PRECISION_ENV, encoder_dtype
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.family_guess import UNKNOWN
from nsynth_core.explorer import loaded_models
from nsynth_core.explorer.loaded_models import ENCODE_CACHE_SIZE, encode_notes, load_model, stacked_z
from nsynth_core.explorer.lru_cache import LRUCache
from nsynth_core.explorer.notes import EncodedNote, estimate_pitch, read_note, read_uploads
from nsynth_core.exports.session_archive import load_notes, save_notes
from webapp import encoding_queue
from webapp.encoding_queue import FairBatchQueue, Position, pitch_and_encode, prepared_notes
from webapp.low_priority import compute_nice, thread_nice
from tests.app_helpers import REPO, write_tiny_checkpoints


class Recorder:
    """A process function that records each batch, can hold the first one at a gate, and fails on "bad"."""

    def __init__(self):
        self.batches = []
        self.gate = threading.Event()
        self.held = threading.Event()
        self.nice = None

    def __call__(self, group, items):
        self.nice = thread_nice()
        if "hold" in items:
            self.held.set()
            self.gate.wait(30)
        self.batches.append(list(items))
        if "bad" in items:
            raise ValueError("a bad item")
        return [f"{group}:{item}" for item in items]

    @property
    def order(self):
        return [item for batch in self.batches for item in batch]


def held_queue(batch_size=4, before=()):
    """A queue whose worker, after processing `before`, is inside a batch of ["hold"] until recorder.gate is
    set."""
    recorder = Recorder()
    queue = FairBatchQueue(recorder, batch_size)
    if before:
        queue.run("earlier", "g", list(before))
    first = queue.submit("starter", "g", ["hold"])
    assert recorder.held.wait(30)
    return queue, recorder, first


def test_a_single_note_is_served_before_a_big_upload_submitted_earlier_is_done():
    queue, recorder, first = held_queue()
    heavy = queue.submit("heavy", "g", [f"h{i}" for i in range(16)])
    light = queue.submit("light", "g", ["l0"])
    recorder.gate.set()
    assert queue.wait(light) == ["g:l0"]
    assert queue.wait(heavy) == [f"g:h{i}" for i in range(16)]  # in their order
    # The note did not wait for the 16 files: it came in the first batch after the one under way, in turn.
    assert recorder.batches[1] == ["h0", "l0", "h1", "h2"]
    assert len(recorder.batches) == 1 + 5


def test_notes_waiting_together_are_processed_in_one_batch():
    queue, recorder, first = held_queue(batch_size=8)
    requests = [queue.submit(f"visitor{i}", "g", [f"v{i}"]) for i in range(5)]
    recorder.gate.set()
    assert [queue.wait(request) for request in requests] == [[f"g:v{i}"] for i in range(5)]
    assert recorder.batches[1:] == [[f"v{i}" for i in range(5)]]


def test_only_notes_for_the_same_encoder_share_a_batch():
    queue, recorder, first = held_queue()
    a = queue.submit("one", "wavenet-a", ["x"])
    b = queue.submit("two", "wavenet-b", ["y"])
    recorder.gate.set()
    assert queue.wait(a) == ["wavenet-a:x"] and queue.wait(b) == ["wavenet-b:y"]
    assert recorder.batches[1:] == [["x"], ["y"]]


def test_positions_count_the_notes_ahead_and_shrink_to_none():
    queue, recorder, first = held_queue()
    heavy = queue.submit("heavy", "g", [f"h{i}" for i in range(16)])
    light = queue.submit("light", "g", ["l0"])
    # The batch under way, and one of the heavy upload's notes (its turn comes first); no batch timed yet.
    assert queue.position(light) == Position(ahead=2, left=1, total=1, seconds=None)
    assert queue.position(heavy) == Position(ahead=2, left=16, total=16, seconds=None)  # before its last: l0
    assert str(queue.position(light)) == "2 notes ahead of yours"
    assert str(queue.position(first)) == "finding the pitch and code of your 1 note"  # under way
    reports = []
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(queue.wait, heavy, reports.append)
        while not reports:  # the first report comes at once, while the worker is held
            threading.Event().wait(0.01)
        recorder.gate.set()
        waiting.result()
    assert reports[0] == Position(ahead=2, left=16, total=16, seconds=None)
    assert all(later.left <= earlier.left for earlier, later in zip(reports, reports[1:]))


def test_the_estimate_counts_the_batches_until_the_requests_last_note_from_the_measured_cost():
    queue, recorder, first = held_queue(before=["w0", "w1"])
    cost = queue.seconds_per_item()
    assert cost is not None and cost > 0  # measured from the batch just run
    heavy = queue.submit("heavy", "g", [f"h{i}" for i in range(16)])
    light = queue.submit("light", "g", ["l0"])
    # What is left of the held batch (1 note, under way for a while), then the batch of 4 that holds the light
    # note: h0, l0, h1, h2.
    position = queue.position(light)
    assert (position.ahead, position.left, position.total) == (2, 1, 1)
    assert 4 * cost <= position.seconds <= 5 * cost
    assert 17 * cost <= queue.position(heavy).seconds <= 18 * cost  # everything: the held note, 16 and l0
    assert str(queue.position(light)).startswith("2 notes ahead of yours, about ")
    recorder.gate.set()
    assert queue.wait(light) == ["g:l0"] and queue.wait(heavy)[-1] == "g:h15"


def test_a_failing_request_gets_its_error_and_the_others_are_served():
    queue, recorder, first = held_queue()
    broken = queue.submit("broken", "g", ["ok1", "bad", "ok2", "ok3", "ok4", "ok5"])
    good = queue.submit("good", "g", ["fine"])
    recorder.gate.set()
    assert queue.wait(good) == ["g:fine"]  # it shared a batch with "bad": retried on its own
    with pytest.raises(ValueError, match="a bad item"):
        queue.wait(broken)
    assert queue.wait(queue.submit("later", "g", ["after"])) == ["g:after"]  # the worker keeps serving
    assert "ok5" not in recorder.order  # what was left of the failed request was dropped


def test_the_worker_runs_below_the_callers_priority():
    queue, recorder, first = held_queue()
    recorder.gate.set()
    queue.wait(first)
    if thread_nice() is not None:
        assert recorder.nice >= max(thread_nice(), compute_nice()) > thread_nice()


def test_the_pitch_search_runs_in_a_niced_process_of_its_own_that_a_kill_replaces(write_tone):
    notes = [read_note(write_tone(frequency=440.0, seconds=1.0))]
    assert [note.pitch for note in pitch_and_encode(None, notes)] == [69]
    worker = encoding_queue.pitch_process().submit(os.getpid).result()
    assert worker != os.getpid()
    if thread_nice() is not None:
        assert os.getpriority(os.PRIO_PROCESS, worker) >= max(compute_nice(), thread_nice())
    os.kill(worker, signal.SIGKILL)
    with pytest.raises(BrokenProcessPool):
        for _ in range(50):  # until the pool has seen its process die
            pitch_and_encode(None, notes)
    assert [note.pitch for note in pitch_and_encode(None, notes)] == [69]


SERVER = """
import os, sys
from webapp import encoding_queue
print(encoding_queue.pitch_process().submit(os.getpid).result(), flush=True)
sys.stdin.read()
"""


def test_the_pitch_process_ends_with_a_server_killed_by_a_signal():
    """A server stopped by SIGTERM or SIGKILL runs no clean-up; its pitch process must not live on."""
    for stop in (signal.SIGTERM, signal.SIGKILL):
        server = subprocess.Popen([sys.executable, "-c", SERVER], cwd=REPO, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        worker = int(server.stdout.readline())
        server.send_signal(stop)
        server.wait()
        deadline = time.monotonic() + 60
        while Path(f"/proc/{worker}").exists() and "Z" not in Path(f"/proc/{worker}/stat").read_text().split()[2]:
            assert time.monotonic() < deadline, f"the pitch process outlived a server stopped by {stop.name}"
            time.sleep(0.1)


def test_queued_notes_get_the_pitch_and_code_they_get_directly(tmp_path, write_tone):
    torch.set_num_threads(1)
    wavenet = load_model(write_tiny_checkpoints(tmp_path)[0])
    uploads = [[read_note(write_tone(frequency=f, seconds=1.0).rename(tmp_path / f"{f}.wav"))
                for f in frequencies] for frequencies in ([220.0, 330.0, 440.0], [262.0], [523.0, 110.0])]
    queue = FairBatchQueue(pitch_and_encode)
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda i: queue.run(f"visitor{i}", wavenet, uploads[i]), range(3)))
    for notes, queued in zip(uploads, results):
        assert [note.pitch for note in queued] == [estimate_pitch(note.audio) for note in notes]
        assert [note.id for note in queued] == [note.id for note in notes]
        with torch.no_grad():
            audio = torch.from_numpy(np.stack([note.audio for note in notes]))
            direct = wavenet.model.encode(audio, encoder_dtype(torch.device("cpu"))).numpy()  # visitors' precision
        assert all(isinstance(note, EncodedNote) and note.precision == encoder_dtype(torch.device("cpu"))
                   for note in queued)
        np.testing.assert_allclose(stacked_z(queued), direct, atol=1e-5)
    assert [note.pitch for note in results[0]] == [57, 64, 69]


def test_notes_waiting_together_get_their_guess_and_place_once_the_map_is_ready(tmp_path, write_tone):
    torch.set_num_threads(1)
    directory = tmp_path / "checkpoints"
    wavenet = load_model(write_tiny_checkpoints(directory)[0])
    explorer = Explorer(directory)
    notes = [read_note(write_tone(frequency=f, seconds=1.0).rename(tmp_path / f"{f}.wav")) for f in (220.0, 330.0)]
    # Before the map is ready the queue neither computes it nor guesses: the visitor's own request does that.
    early = prepared_notes(explorer, wavenet, notes)
    assert not explorer.has_map(wavenet) and [note.family for note in early] == [UNKNOWN, UNKNOWN]
    embedding_map = explorer.map_for(wavenet)
    prepared = prepared_notes(explorer, wavenet, notes)
    assert all(note.family.endswith("?") for note in prepared)
    asked, transform = [], embedding_map.reducer.transform
    embedding_map.reducer.transform = lambda features: asked.append(len(features)) or transform(features)
    assert explorer.place_notes(wavenet, prepared).shape == (2, 2) and asked == []  # placed in the queue's batch


def test_the_same_audio_uploaded_or_restored_from_a_saved_file_gets_the_same_z(tmp_path, write_tone, monkeypatch):
    """A visitor's note is encoded in one precision whatever way it came in: an upload goes through the queue (in
    bfloat16 here), a note restored after a restart is encoded when first used; the same audio encoded as an
    example (float32) never stands in for it."""
    torch.set_num_threads(1)
    monkeypatch.setenv(ENCODER_PRECISION_ENV, "bf16")
    directory = tmp_path / "checkpoints"
    wavenet = load_model(write_tiny_checkpoints(directory)[0])
    queue = FairBatchQueue(partial(prepared_notes, Explorer(directory)))
    (uploaded,), _ = read_uploads([write_tone(frequency=330.0, seconds=1.0)], {},
                                  prepare=lambda read: queue.run("visitor", wavenet, read))
    restored, = load_notes(save_notes([uploaded], tmp_path / "notes.npz"))
    assert not isinstance(restored, EncodedNote)  # the file keeps the audio, not the Z
    monkeypatch.setattr(loaded_models, "_encodings", LRUCache(ENCODE_CACHE_SIZE))  # as after a restart
    as_example, = encode_notes(wavenet, [replace(restored, id="example", source="FluidR3_GM")])
    encoded, = encode_notes(wavenet, [restored])
    assert uploaded.precision == encoded.precision == torch.bfloat16 and as_example.precision == torch.float32
    np.testing.assert_array_equal(encoded.z, uploaded.z)
    assert not np.array_equal(as_example.z, uploaded.z)
