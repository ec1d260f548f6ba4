"""Encode notes once with a frozen WaveNet encoder and keep their Z, so a decoder can train on them at frame rate.

    python -m train.cache_z --data data/nsynth-sf/nsynth-train --checkpoint checkpoints/wavenet \
        --out data/z-cache/nsynth-train --notes 4000

A seeded random choice of `--notes` notes of the folder is encoded as the app encodes a note (peak NOTE_PEAK),
in shards of `--shard-notes`; each shard is written atomically, so a killed run continues where it stopped when
the same command is run again, and a larger `--notes` extends a cache whose shards are full (the seeded order is
the same, so its notes stay the first). `manifest.json` records the encoder (its weights' fingerprint) and the
choice; a cache made by another encoder or another choice is refused rather than mixed.
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm

from nsynth_core.audio.core import NOTE_PEAK, SILENCE_PEAK, normalize_loudness
from nsynth_core.models.checkpoint import load_checkpoint, weights_fingerprint
from nsynth_core.data.nsynth import read_examples_json, read_wav
from nsynth_core.models.wavenet import WaveNetAutoencoder


class CacheError(ValueError):
    """A cache folder that does not belong to this encoder or choice of notes."""


def choose_notes(examples: dict, count: int, seed: int) -> list[str]:
    names = sorted(examples)
    order = np.random.default_rng(seed).permutation(len(names))
    return [names[i] for i in order[:count]]


def open_manifest(out: Path, manifest: dict) -> None:
    """Writes the manifest of a new cache; checks an existing one describes the same encoder and notes."""
    path = out / "manifest.json"
    if path.exists():
        existing = json.loads(path.read_text())
        # More notes of the same seeded order extend a cache whose shards are all full: its notes stay the first.
        if ({**existing, "notes": manifest["notes"]} == manifest and manifest["notes"] > existing["notes"]
                and existing["notes"] % existing["shard_notes"] == 0):
            path.write_text(json.dumps(manifest, indent=2) + "\n")
            return
        if existing != manifest:
            changed = sorted(k for k in manifest if existing.get(k) != manifest[k])
            raise CacheError(f"{out} holds Z from another encoder or choice of notes ({', '.join(changed)} "
                             f"differ); use another --out.")
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def cache_encoder(cache: Path) -> str:
    """The fingerprint of the encoder whose Z a cache holds."""
    return json.loads((Path(cache) / "manifest.json").read_text())["encoder"]


def encode_shard(model: WaveNetAutoencoder, data: Path, examples: dict, names: list[str]) -> tuple[dict, list]:
    """Z [n, frames, latent] of the usable notes among `names`, with their pitches; and the names kept."""
    kept, audio = [], []
    for name in names:
        note = read_wav(data / "audio" / f"{name}.wav")
        if np.abs(note).max(initial=0.0) >= SILENCE_PEAK:  # silence has no level to normalise to
            kept.append(name)
            audio.append(normalize_loudness(note, NOTE_PEAK))
    z = model.encode(torch.from_numpy(np.stack(audio))) if audio else torch.zeros(0)
    pitches = [int(examples[name]["pitch"]) for name in kept]
    return {"z": z.contiguous(), "pitch": torch.tensor(pitches, dtype=torch.int64)}, kept


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="an NSynth json/wav folder")
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/wavenet"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--notes", type=int, default=4000)
    parser.add_argument("--shard-notes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model, _ = load_checkpoint(args.checkpoint)
    examples = read_examples_json(args.data)
    names = choose_notes(examples, args.notes, args.seed)
    open_manifest(args.out, {"data": args.data.name, "encoder": weights_fingerprint(args.checkpoint),
                             "notes": len(names), "seed": args.seed, "shard_notes": args.shard_notes,
                             "note_peak": NOTE_PEAK})
    shards = range(0, len(names), args.shard_notes)
    start = time.time()
    encoded = 0
    for index in tqdm(shards, desc="shards", unit="shard"):
        path = args.out / f"shard-{index // args.shard_notes:05d}.safetensors"
        if path.exists():
            continue
        tensors, kept = encode_shard(model, args.data, examples, names[index: index + args.shard_notes])
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata={"names": json.dumps(kept)})
        os.replace(tmp, path)
        encoded += len(kept)
    if encoded:
        seconds = time.time() - start
        print(f"Encoded {encoded} notes in {seconds:.0f} s ({seconds / encoded:.2f} s per note).")


if __name__ == "__main__":
    main()
