"""Where an upload's time goes: each stage of adding N visitor notes, timed in this process (no web server).

    python -m benchmarks.upload_stages                        # 1 and 16 rendered test notes, shipped WaveNet
    python -m benchmarks.upload_stages --notes 1 4 16 --checkpoint checkpoints/wavenet

Stages, as add_uploads runs them: read (decode, resample, cut to 4 s), pitch (pYIN), encode (the WaveNet
encoder, in batches), place (map features and the reducer's transform) and guess (the family vote). Each run
takes notes not used before, so every note is encoded afresh. Prints seconds per stage and per note, with the load
average and torch.mm's peak measured in the same run.
"""

import argparse
import os
import time
from pathlib import Path

import torch

from benchmarks.decode import matmul_peak
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.loaded_models import LoadedModel, encode_notes, load_model
from nsynth_core.explorer.notes import read_note, with_pitches
from nsynth_core.explorer import family_guess

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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="checkpoints/wavenet")
    parser.add_argument("--notes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--folder", type=Path, default=TEST_NOTES, help="wav files to upload")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as the app runs
    files = sorted(args.folder.glob("*.wav"))[::97]
    app, wavenet = Explorer(), load_model(args.checkpoint)
    stages(app, wavenet, files[:1])  # warm-up: imports, the reducer, first calls
    peak, _ = matmul_peak(1)
    load = os.getloadavg()
    print(f"torch.mm peak {peak:.1f} GFLOP/s; load average {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} on "
          f"{os.cpu_count()} CPUs; {args.checkpoint}")
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
