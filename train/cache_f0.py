"""Measure the f0 contour of every note in a Z cache (train/cache_z.py) and keep it beside that note's Z, so the
DDSP decoder's pitch-motion head can be trained on it.

    python -m train.cache_f0 --data data/nsynth-sf/nsynth-train --z-cache data/z-cache/nsynth-train

For each Z shard `shard-NNNNN.safetensors` it writes `f0-NNNNN.safetensors`: per note the f0 in cents from the
labelled pitch every CONTOUR_HOP samples (`metrics.f0_contour`: pYIN's voicing, YIN's f0, searched within a few
semitones of the label) and which frames are voiced. Each file is written atomically and skipped when present,
so a killed run continues where it stopped; with `--follow` it waits for the Z cache's shards still to come
(run it beside `train.cache_z`) until the cache holds as many notes as its manifest names.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from nsynth_core.audio.core import NOTE_LENGTH
from nsynth_core.audio.metrics import CONTOUR_HOP, f0_contour
from nsynth_core.data.nsynth import contour_path, read_examples_json, read_wav

FOLLOW_POLL_SECONDS = 30


def shard_contours(data: Path, examples: dict, names: list[str]) -> dict:
    """cents [n, frames] and voiced [n, frames] of the named notes, frames = NOTE_LENGTH // CONTOUR_HOP."""
    frames = NOTE_LENGTH // CONTOUR_HOP
    cents = np.zeros((len(names), frames), dtype=np.float32)
    voiced = np.zeros((len(names), frames), dtype=bool)
    for row, name in enumerate(names):
        audio = np.zeros(NOTE_LENGTH, dtype=np.float32)
        note = read_wav(data / "audio" / f"{name}.wav")[:NOTE_LENGTH]
        audio[:len(note)] = note
        note_cents, note_voiced = f0_contour(audio, int(examples[name]["pitch"]), hop_length=CONTOUR_HOP)
        cents[row], voiced[row] = note_cents[:frames], note_voiced[:frames]
    return {"cents": torch.from_numpy(cents), "voiced": torch.from_numpy(voiced)}


def cache_contours(data: Path, cache: Path, follow: bool = False) -> int:
    """Writes the missing contour files of `cache`; returns how many notes were measured."""
    examples = read_examples_json(data)
    expected = json.loads((cache / "manifest.json").read_text())["notes"]
    measured = 0
    while True:
        shards = sorted(cache.glob("shard-*.safetensors"))
        todo = [shard for shard in shards if not contour_path(shard).exists()]
        for shard in tqdm(todo, desc="f0 contours", unit="shard"):
            with safe_open(str(shard), "pt") as file:
                names = json.loads(file.metadata()["names"])
            tensors = shard_contours(data, examples, names)
            path = contour_path(shard)
            tmp = path.with_suffix(".tmp")
            save_file(tensors, str(tmp), metadata={"names": json.dumps(names), "hop": str(CONTOUR_HOP)})
            os.replace(tmp, path)
            measured += len(names)
        shard_notes = json.loads((cache / "manifest.json").read_text())["shard_notes"]
        if not follow or len(shards) * shard_notes >= expected:
            return measured
        time.sleep(FOLLOW_POLL_SECONDS)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the NSynth json/wav folder the Z cache was made from")
    parser.add_argument("--z-cache", type=Path, required=True)
    parser.add_argument("--follow", action="store_true", help="wait for Z shards still being written")
    args = parser.parse_args(argv)
    start = time.time()
    measured = cache_contours(args.data, args.z_cache, args.follow)
    if measured:
        seconds = time.time() - start
        print(f"Measured {measured} notes in {seconds:.0f} s ({seconds / measured:.2f} s per note).")


if __name__ == "__main__":
    main()
