"""Where an upload's time goes: each stage of adding N visitor notes, timed in this process (no web server).

    python -m benchmarks.upload_stages                        # 1 and 16 rendered test notes, shipped WaveNet
    python -m benchmarks.upload_stages --notes 1 4 16 --checkpoint checkpoints/wavenet
    python -m benchmarks.upload_stages --visitors 30          # 30 visitors' 1 s tones through the encoding queue at once

Stages, as add_uploads runs them: read (decode, resample, cut to 4 s), pitch (pYIN), encode (the WaveNet
encoder, in batches), place (map features and the reducer's transform) and guess (the family vote). Each run
takes notes not used before, so every note is encoded afresh. Prints seconds per stage and per note, with the load
average and torch.mm's peak measured in the same run. With --visitors N, N threads each add one 1 s tone (padded
to 4 s, as an upload is) through the app's encoding queue at the same instant, as N visitors' uploads reach it
(no web server: what the queue itself takes), and it prints when their notes were done.
"""

import argparse
import functools
import os
import threading
import time
from pathlib import Path

import torch

from benchmarks.decode import matmul_peak
from benchmarks.load_test import tone_samples
import numpy as np

from nsynth_core.audio.core import NOTE_LENGTH, SAMPLE_RATE
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.loaded_models import LoadedModel, encode_notes, load_model
from nsynth_core.explorer.notes import Note, audio_digest, read_note, with_pitches
from nsynth_core.explorer import family_guess
from webapp.encoding_queue import FairBatchQueue, prepared_notes

TEST_NOTES = Path("data/nsynth-sf/nsynth-test/audio")


def stages(app: Explorer, wavenet: LoadedModel, paths: list[Path]) -> dict[str, float]:
    app.map_for(wavenet)  # the examples' map and their Z: what a running app has before any upload
    encode_notes(wavenet, list(app.bundled.values()))
    seconds = {}
    start = time.perf_counter()
    read = [read_note(path) for path in paths]
    seconds["read"] = time.perf_counter() - start
    start = time.perf_counter()
    notes = with_pitches(read)
    seconds["pitch"] = time.perf_counter() - start
    start = time.perf_counter()
    notes = encode_notes(wavenet, notes)
    seconds["encode"] = time.perf_counter() - start
    start = time.perf_counter()
    app.place_notes(wavenet, notes)
    seconds["place"] = time.perf_counter() - start
    start = time.perf_counter()
    family_guess.with_guessed_families(app, wavenet, {note.id: note for note in notes})
    seconds["guess"] = time.perf_counter() - start
    return seconds


def tone(midi: int) -> Note:
    """load_test's visitor tone, padded with silence to a note's length (as an upload is)."""
    audio = np.zeros(NOTE_LENGTH, np.float32)
    audio[:SAMPLE_RATE] = tone_samples(midi)
    return Note(id=f"upload-{audio_digest(audio)}", name=f"tone {midi}", audio=audio, source="upload")


def visitors_at_once(app: Explorer, wavenet: LoadedModel, count: int) -> None:
    queue = FairBatchQueue(functools.partial(prepared_notes, app))
    queue.run("warm-up", wavenet, [tone(30 + i) for i in range(4)])  # pYIN's first call compiles
    done, arrived = [], threading.Barrier(count)

    def visit(index: int) -> None:
        arrived.wait()
        start = time.perf_counter()
        queue.run(f"visitor {index}", wavenet, [tone(40 + index)])
        done.append(time.perf_counter() - start)

    threads = [threading.Thread(target=visit, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    p50, p95 = np.percentile(done, [50, 95])
    print(f"{count} visitors' notes done after p50 {p50:.2f} s, p95 {p95:.2f} s, max {max(done):.2f} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/wavenet")
    parser.add_argument("--notes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--folder", type=Path, default=TEST_NOTES, help="wav files to upload")
    parser.add_argument("--visitors", type=int, help="instead: this many visitors' tones through the queue at once")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the app runs
    files = sorted(args.folder.glob("*.wav"))[::97]
    app, wavenet = Explorer(), load_model(args.checkpoint)
    if args.visitors:
        app.map_for(wavenet)  # as a running app has it, so each note is also placed and its family guessed
    else:
        stages(app, wavenet, files[:1])  # warm-up: imports, the reducer, first calls
    peak, _ = matmul_peak(1)
    load = os.getloadavg()
    print(f"torch.mm peak {peak:.1f} GFLOP/s; load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} on "
          f"{os.cpu_count()} CPUs; {args.checkpoint}")
    if args.visitors:
        visitors_at_once(app, wavenet, args.visitors)
        return
    print(f"{'notes':>5}  {'stage':>6}  {'s':>6}  {'s/note':>6}  {'share':>5}")
    used = 1
    for count in args.notes:
        seconds = stages(app, wavenet, files[used:used + count])
        used += count
        total = sum(seconds.values())
        for stage, value in seconds.items():
            print(f"{count:>5}  {stage:>6}  {value:6.2f}  {value / count:6.3f}  {value / total:5.0%}")
        print(f"{count:>5}  {'total':>6}  {total:6.2f}  {total / count:6.3f}")


if __name__ == "__main__":
    main()
