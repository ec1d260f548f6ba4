"""The paper's evaluation table on held-out instruments: original audio, WaveNet, spectral-baseline and DDSP
reconstructions.

    python -m train.evaluate --data DATA/nsynth-test --train-data DATA/nsynth-train \
        --wavenet checkpoints/wavenet --spectral checkpoints/spectral --ddsp checkpoints/ddsp --notes 24 \
        --out results.md

N notes of the test split (spread over families, instruments and pitches; the same notes for the same --seed)
are reconstructed by every model, and each row reports
- pitch accuracy: the median pYIN f0 of the note lies within 50 cents of its labelled pitch;
- family accuracy: a classifier trained on real notes of the training split (family_classifier.py) names the
  note's instrument family, the analogue of the paper's Inception-style score;
- STFT distance: the multi-resolution STFT distance to the original, mean over notes; beside it the same
  distance over the sounding part only (frames within 60 dB of the original's peak), level-matched;
- retrieval: whether the nearest original by a fixed timbre descriptor (MFCCs, spectral shape, level envelope,
  standardised over the originals) is of the note's own instrument (the originals' row: the nearest other note);
- pitch motion: for originals whose f0 moves over the held part (spread above 4 cents), the share of
  reconstructions whose spread is within 0.5-2 times the original's; for steady ones, the reconstructions' median
  spread in cents;
- silent tails: for originals whose last 0.4 s lie below -90 dBFS, the share of reconstructions that do too.
The WaveNet gets one row per sampling temperature (--temperature 1 0.5: two rows, one encoding of the notes);
its teacher-forced cross-entropy on the same notes (at the models' input level) and its decoding times are reported
beside the table. Each --ddsp checkpoint is one row more, decoding the WaveNet encoder's Z of the notes (or, for
a DDSP model trained with an encoder of its own, that encoder's). `--temperature` with no value and no --spectral
leave only the originals and the DDSP rows: the WaveNet then only encodes, which compares DDSP checkpoints on many
notes in minutes.
Z comes from the whole note, but only its first --length-seconds are decoded and measured, because sample-by-sample
decoding is the expensive part. The models are given each note at the level the app and the command line give
them (peak audio.NOTE_PEAK); reconstructions are compared with the note at its own level. A pitch-conditioned
model is given each note's labelled pitch. The markdown table
goes to --out and stdout, the raw numbers (per note too) to --out with the suffix .json.
"""

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from nsynth_core import default_device
from nsynth_core.audio.core import NOTE_LENGTH, NOTE_PEAK, SAMPLE_RATE, SILENCE_PEAK, mu_law_encode, normalize_loudness
from nsynth_core.models.checkpoint import load_checkpoint
from nsynth_core.cli import non_negative_float, positive
from nsynth_core.data.nsynth import FAMILIES, read_examples_json, read_wav
from nsynth_core.models.ddsp import DDSPDecoder
from nsynth_core.explorer.decoding import decoding_for
from nsynth_core.engine.fastgen import generate_fastest
from nsynth_core.audio.metrics import (MOVING_SPREAD_CENTS, PITCH_FRAME_LENGTH, cents_error, f0_spread, median_f0,
                                       multiscale_stft_distance, retrieval_chance, retrieval_hits,
                                       sounding_stft_distance, timbre_descriptor)
from nsynth_core.models.spectral import SpectralAutoencoder
from nsynth_core.models.wavenet import WaveNetAutoencoder
from train.family_classifier import FEATURE_SECONDS, round_robin, train_family_classifier

PITCH_TOLERANCE_CENTS = 50
SHORTEST_WINDOW = max(2048, PITCH_FRAME_LENGTH)  # the largest FFT of the STFT distance, and one pYIN frame
ENCODE_BATCH = 8  # notes per encoder or spectral-model pass, which bounds memory for the paper-sized models
ORIGINAL, SPECTRAL = "Original audio", "Spectral baseline reconstruction"
SPREAD_RATIO_RANGE = (0.5, 2.0)  # a reconstruction keeps an original's pitch motion within these ratios
STEADY_SPREAD_CENTS = 3.0  # a reconstruction of a steady original stays steady within this
TAIL_SECONDS, SILENT_DB = 0.4, -90.0  # the note's end, and the level below which it is silent


def wavenet_row(temperature: float) -> str:
    return f"WaveNet reconstruction, temperature {temperature:g}"


def ddsp_row(path, decoding) -> str:
    z_source = "its own encoder's Z" if decoding.own_encoder else "the WaveNet's Z"
    return f"DDSP reconstruction ({Path(path).name}, {z_source})"


class EvaluationError(ValueError):
    """Options or inputs the evaluation cannot work with."""


def choose_notes(examples: dict, count: int, seed: int) -> list[str]:
    """`count` note names spread over families, instruments and pitches; the same names for the same seed.

    Instruments take turns, ordered so that families alternate; each turn takes the instrument's note nearest
    the next of `count` pitch targets, which are quantiles of the split's pitches dealt in random order.
    """
    if not 0 < count <= len(examples):
        raise EvaluationError(f"Cannot evaluate {count} notes: the test split holds {len(examples)}.")
    rng = np.random.default_rng(seed)
    by_family = defaultdict(lambda: defaultdict(list))
    for name, example in sorted(examples.items()):
        by_family[int(example["instrument_family"])][int(example["instrument"])].append((name, int(example["pitch"])))
    families = [by_family[family] for family in rng.permutation(sorted(by_family))]
    remaining = round_robin([[list(family[i]) for i in rng.permutation(sorted(family))] for family in families])
    pitches = np.sort([int(example["pitch"]) for example in examples.values()])
    targets = rng.permutation(pitches[((np.arange(count) + 0.5) * len(pitches) / count).astype(int)])
    chosen, turn = [], 0
    for target in targets:
        while not remaining[turn % len(remaining)]:
            turn += 1
        notes = remaining[turn % len(remaining)]
        # A random fraction of a semitone only breaks ties, e.g. between the velocities of one pitch.
        nearest = int(np.argmin([abs(pitch - target) + 0.5 * rng.random() for _, pitch in notes]))
        chosen.append(notes.pop(nearest)[0])
        turn += 1
    return chosen


def load_notes(root: Path, names: list[str]) -> np.ndarray:
    """Audio [N, NOTE_LENGTH] of the named notes, shorter ones padded with silence."""
    audio = np.zeros((len(names), NOTE_LENGTH), dtype=np.float32)
    for row, name in zip(audio, names):
        note = read_wav(root / "audio" / f"{name}.wav")[:NOTE_LENGTH]
        row[:len(note)] = note
    return audio


def load_model(path, kind, device) -> tuple[torch.nn.Module, dict]:
    model, metadata = load_checkpoint(path, device)
    if not isinstance(model, kind):
        raise EvaluationError(f"'{path}' holds a {type(model).__name__}, not a {kind.__name__}.")
    return model, metadata


@torch.no_grad()
def wavenet_reconstructions(model: WaveNetAutoencoder, audio: np.ndarray, pitches: list[int], length: int,
                            seed: int, temperatures=(1.0,)
                            ) -> tuple[list[np.ndarray], float, list[float], torch.Tensor]:
    """(reconstructions [N, length] and decoding seconds per temperature, teacher-forced cross-entropy in nats
    per sample (None without temperatures: no WaveNet rows), and the notes' Z).

    All notes are decoded in one batch, the way the decoder is fastest per note; each temperature starts from the
    same seed.
    """
    device = next(model.parameters()).device
    notes = torch.from_numpy(audio).to(device)
    pitch = torch.tensor(pitches, device=device) if model.config.pitch_classes else None
    z = torch.cat([model.encode(batch) for batch in notes.split(ENCODE_BATCH)])
    if not temperatures:
        return [], None, [], z
    window = notes[:, :length]
    total_nats = 0.0
    # One note at a time: the decoder's activations span every sample.
    for index in tqdm(range(len(notes)), desc="cross-entropy", unit="note"):
        note_pitch = None if pitch is None else pitch[index:index + 1]
        logits = model.decode_logits(window[index:index + 1], z[index:index + 1], note_pitch)
        target = mu_law_encode(window[index:index + 1]) + 128
        total_nats += F.cross_entropy(logits.float(), target, reduction="sum").item()
    reconstructions, seconds = [], []
    for temperature in temperatures:
        start = time.perf_counter()
        with tqdm(total=length, unit="sample", unit_scale=True,
                  desc=f"decoding {len(notes)} notes at temperature {temperature:g}") as bar:
            reconstructions.append(generate_fastest(model, z, pitch, temperature=temperature, seed=seed,
                                                    length=length, progress=lambda done, _: bar.update(done - bar.n)))
        seconds.append(time.perf_counter() - start)
    return reconstructions, total_nats / window.numel(), seconds, z


@torch.no_grad()
def ddsp_reconstructions(model: DDSPDecoder, wavenet_z: torch.Tensor, audio: np.ndarray, pitches: list[int],
                         length: int) -> tuple[np.ndarray, float]:
    """(reconstructions [N, length], decoding seconds) from the WaveNet's Z, or the model's own encoder's."""
    decoding = decoding_for(model)
    z = model.encode(torch.from_numpy(audio).to(decoding.device)) if decoding.own_encoder else wavenet_z
    start = time.perf_counter()
    reconstructions = decoding.decode(z, torch.tensor(pitches), length)
    return reconstructions, time.perf_counter() - start


@torch.no_grad()
def spectral_reconstructions(model: SpectralAutoencoder, audio: np.ndarray, pitches: list[int],
                             griffin_lim_iters: int) -> np.ndarray:
    """Reconstructions [N, NOTE_LENGTH] through the spectrogram autoencoder and Griffin-Lim."""
    batches = []
    for start in tqdm(range(0, len(audio), ENCODE_BATCH), desc="spectral baseline", unit="batch"):
        batch = torch.from_numpy(audio[start:start + ENCODE_BATCH])
        pitch = torch.tensor(pitches[start:start + ENCODE_BATCH]) if model.config.pitch_classes else None
        batches.append(model.reconstruct(batch, pitch, griffin_lim_iters))
    return np.concatenate(batches)


def matched_peak(reconstructions: np.ndarray, originals: np.ndarray) -> np.ndarray:
    """Each reconstruction scaled to its original's peak (silence left as it is).

    Griffin-Lim output is peak-normalised whatever the note's loudness, so without this the STFT distance
    would mostly measure gain.
    """
    peak = np.abs(reconstructions).max(axis=1, keepdims=True)
    target = np.abs(originals).max(axis=1, keepdims=True)
    gain = np.where(peak > SILENCE_PEAK, target / np.maximum(peak, SILENCE_PEAK), 1.0)
    return (reconstructions * gain).astype(np.float32)


def tail_level_db(audio: np.ndarray) -> np.ndarray:
    """RMS level in dBFS of each note's last TAIL_SECONDS."""
    tail = audio[:, -round(TAIL_SECONDS * SAMPLE_RATE):].astype(np.float64)
    return 10 * np.log10(np.mean(tail ** 2, axis=1) + 1e-30)


def descriptor(note: np.ndarray) -> np.ndarray:
    """The timbre descriptor of a note; zeros for a silent one (which has none), so it still takes part."""
    return timbre_descriptor(note) if np.any(note) else np.zeros(timbre_descriptor(np.ones(SHORTEST_WINDOW)).shape,
                                                                 dtype=np.float32)


def describe_originals(originals: np.ndarray, pitches: list[int], instruments: list[int]) -> dict:
    """What every row is compared with: the originals' timbre descriptors, f0 spreads and tail levels."""
    return {"descriptors": np.stack([descriptor(note) for note in originals]),
            "spreads": np.array([f0_spread(note, pitch) for note, pitch in
                                 tqdm(zip(originals, pitches), desc="f0 spread", unit="note", leave=False,
                                      total=len(pitches))]),
            "tail_db": tail_level_db(originals), "instruments": np.array(instruments)}


def motion_scores(spreads: np.ndarray, reference: dict) -> dict:
    moving = reference["spreads"] > MOVING_SPREAD_CENTS  # nan (too little voiced) is neither
    steady = reference["spreads"] <= MOVING_SPREAD_CENTS
    ratios = spreads[moving] / reference["spreads"][moving]
    kept = (ratios >= SPREAD_RATIO_RANGE[0]) & (ratios <= SPREAD_RATIO_RANGE[1])  # nan: not kept
    steady_spreads = spreads[steady]
    return {"moving_notes": int(moving.sum()), "steady_notes": int(steady.sum()),
            "moving_kept": 100.0 * kept.mean() if len(kept) else None,
            "moving_median_ratio": float(np.nanmedian(ratios)) if np.isfinite(ratios).any() else None,
            "steady_median_spread": float(np.nanmedian(steady_spreads)) if np.isfinite(steady_spreads).any() else None,
            "steady_kept": 100.0 * np.mean(steady_spreads <= STEADY_SPREAD_CENTS) if len(steady_spreads) else None}


def score(audio: np.ndarray, originals: np.ndarray, pitches: list[int], families: list[int], classifier,
          reference: dict, is_original: bool = False) -> dict:
    """One row of the table, and the per-note figures behind it."""
    f0 = np.array([median_f0(note) for note in tqdm(audio, desc="pitch", unit="note", leave=False)])
    errors = cents_error(f0, np.array(pitches))
    pitch_kept = np.abs(errors) <= PITCH_TOLERANCE_CENTS  # False where no pitch was found (nan)
    predicted = classifier.predict(audio)
    distances = np.array([multiscale_stft_distance(original, note) for original, note in zip(originals, audio)])
    sounding = np.array([sounding_stft_distance(original, note) if np.any(original) else np.nan
                         for original, note in zip(originals, audio)])  # a silent original has no sounding part
    if is_original:
        descriptors, spreads = reference["descriptors"], reference["spreads"]
    else:
        descriptors = np.stack([descriptor(note) for note in audio])
        spreads = np.array([f0_spread(note, pitch) for note, pitch in zip(audio, pitches)])
    retrieved = retrieval_hits(descriptors, reference["descriptors"], reference["instruments"],
                               leave_one_out=is_original)
    silent = reference["tail_db"] < SILENT_DB
    tail_db = tail_level_db(audio)
    return {
        "pitch_accuracy": 100.0 * pitch_kept.mean(),
        "family_accuracy": 100.0 * np.mean(predicted == np.array(families)),
        "stft_distance": float(distances.mean()),
        "sounding_stft_distance": float(np.nanmean(sounding)) if np.isfinite(sounding).any() else None,
        "retrieval": 100.0 * retrieved.mean(),
        "retrieval_chance": 100.0 * retrieval_chance(reference["instruments"], leave_one_out=is_original),
        **motion_scores(spreads, reference),
        "silent_tails": int(silent.sum()),
        "silent_tails_kept": 100.0 * np.mean(tail_db[silent] <= SILENT_DB) if silent.any() else None,
        "per_note": {
            "median_f0_hz": [None if math.isnan(f) else round(float(f), 2) for f in f0],
            "pitch_kept": pitch_kept.tolist(),
            "predicted_family": [FAMILIES[p] for p in predicted],
            "stft_distance": distances.round(4).tolist(),
            "sounding_stft_distance": [None if math.isnan(d) else round(float(d), 4) for d in sounding],
            "retrieved": retrieved.tolist(),
            "f0_spread_cents": [None if math.isnan(v) else round(float(v), 2) for v in spreads],
            "tail_db": tail_db.round(1).tolist(),
        },
    }


def markdown_table(results: dict) -> str:
    lines = ["| Audio | Pitch accuracy (%) | Family accuracy (%) | STFT distance | Sounding STFT distance "
             "| Retrieval (%) | Moving f0 kept (%) | Steady spread (cents) | Silent tails kept (%) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    optional = lambda value, form: "–" if value is None else format(value, form)
    for label, row in results["rows"].items():
        lines.append(f"| {label} | {row['pitch_accuracy']:.1f} | {row['family_accuracy']:.1f} "
                     f"| {row['stft_distance']:.3f} | {optional(row['sounding_stft_distance'], '.3f')} | {row['retrieval']:.1f} "
                     f"| {optional(row['moving_kept'], '.1f')} | {optional(row['steady_median_spread'], '.2f')} "
                     f"| {optional(row['silent_tails_kept'], '.1f')} |")
    original = results["rows"][ORIGINAL]
    reconstructed_chance = next((row["retrieval_chance"] for label, row in results["rows"].items()
                                 if label != ORIGINAL), None)
    wavenet, spectral, classifier = results["wavenet"], results["spectral"], results["classifier"]
    step = lambda model: "unknown step" if model["step"] is None else f"step {model['step']}"
    conditioning = lambda model: "given the labelled pitch" if model["pitch_conditioned"] else "no pitch input"
    notes = len(results["notes"])
    decode_times = ", ".join(f"in {seconds:.1f} s at temperature {temperature:g} ({seconds / notes:.2f} s per note)"
                             for temperature, seconds in zip(wavenet["temperatures"], wavenet["decode_seconds"]))
    lines += [
        "",
        f"{notes} notes of {results['data']}, from {results['instruments']} held-out instruments "
        f"(MIDI {min(results['pitches'])}–{max(results['pitches'])}), the first {results['length_seconds']:g} s of each. "
        + (f"WaveNet: {step(wavenet)}, {conditioning(wavenet)}, teacher-forced cross-entropy "
           f"{wavenet['cross_entropy_nats']:.3f} nats per sample; all notes decoded in one batch, seed "
           f"{results['seed']}, {decode_times}." if wavenet["temperatures"] else
           f"WaveNet: {step(wavenet)}, its encoder only (Z for the DDSP rows).")
        + ("" if spectral is None else f" Spectral baseline: {step(spectral)}, {conditioning(spectral)}, "
                                       f"Griffin-Lim with {spectral['griffin_lim_iters']} iterations.")
        + "".join(f" {label}: {step(model)}, given the labelled pitch, all notes in {model['decode_seconds']:.2f} s "
                  f"({1000 * model['decode_seconds'] / notes:.0f} ms per note)."
                  for label, model in results["ddsp"].items()),
        "",
        f"Family accuracy: a random forest on spectral and envelope features of the first "
        f"{classifier['feature_seconds']:g} s, trained on {classifier['training_notes']} real notes of the training "
        f"split in {classifier['seconds']:.1f} s{' (features cached)' if classifier['features_cached'] else ''}. "
        f"Pitch: median pYIN f0 within {PITCH_TOLERANCE_CENTS} cents of the label. The models hear each note at "
        f"peak {NOTE_PEAK:g}, as in the app; reconstructions are scaled to the original's peak before the STFT "
        "distance.",
        "",
        f"Sounding STFT distance: over the frames within 60 dB of the original's loudest, the reconstruction scaled "
        f"to the original's energy there. Retrieval: the nearest of the {notes} originals by a timbre descriptor "
        f"(MFCC and spectral-shape mean and spread over sounding frames, level envelope; standardised over the "
        f"originals) is of the note's instrument; chance {optional(reconstructed_chance, '.1f')} % (the originals' "
        f"row: the nearest other original, chance {original['retrieval_chance']:.1f} %). Pitch motion, f0 spread in "
        f"cents over the voiced frames of the held part (0.25-3 s): {original['moving_notes']} originals move (spread "
        f"above {MOVING_SPREAD_CENTS:g} cents; kept: the reconstruction's spread within "
        f"{SPREAD_RATIO_RANGE[0]:g}-{SPREAD_RATIO_RANGE[1]:g} times theirs), {original['steady_notes']} are steady "
        f"(median spread of the reconstructions, the originals' own in their row). Silent tails: "
        f"{original['silent_tails']} originals are below {SILENT_DB:g} dBFS over their last {TAIL_SECONDS:g} s; "
        f"kept: the reconstruction is too.",
    ]
    return "\n".join(lines) + "\n"


def evaluate(args) -> dict:
    started = time.perf_counter()
    length = round(args.length_seconds * SAMPLE_RATE)
    if not SHORTEST_WINDOW <= length <= NOTE_LENGTH:
        raise EvaluationError(f"--length-seconds must be from {SHORTEST_WINDOW / SAMPLE_RATE:g} to "
                              f"{NOTE_LENGTH / SAMPLE_RATE:g}, got {args.length_seconds:g}.")
    if len(set(args.temperature)) < len(args.temperature):
        raise EvaluationError(f"--temperature lists a value twice: {' '.join(f'{t:g}' for t in args.temperature)}.")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise EvaluationError("--device cuda was asked for, but PyTorch sees no CUDA GPU here.")
    device = default_device() if args.device == "auto" else torch.device(args.device)
    wavenet, wavenet_metadata = load_model(args.wavenet, WaveNetAutoencoder, device)
    spectral, spectral_metadata = load_model(args.spectral, SpectralAutoencoder, device) if args.spectral else (None, {})
    ddsp = [(path, *load_model(path, DDSPDecoder, device)) for path in args.ddsp]

    examples = read_examples_json(args.data)
    names = choose_notes(examples, args.notes, args.seed)
    pitches = [int(examples[name]["pitch"]) for name in names]
    families = [int(examples[name]["instrument_family"]) for name in names]
    as_rendered = load_notes(Path(args.data), names)
    notes = np.stack([normalize_loudness(note, NOTE_PEAK) for note in as_rendered])
    originals = as_rendered[:, :length]

    classifier = train_family_classifier(args.train_data, min(FEATURE_SECONDS, length / SAMPLE_RATE), args.seed,
                                         cache_dir=Path(args.out).parent)
    wavenet_audio, cross_entropy, decode_seconds, z = wavenet_reconstructions(wavenet, notes, pitches, length,
                                                                              args.seed, args.temperature)
    instruments = [int(examples[name]["instrument"]) for name in names]
    reference = describe_originals(originals, pitches, instruments)
    measure = lambda audio: score(matched_peak(audio, originals), originals, pitches, families, classifier, reference)
    rows = {ORIGINAL: score(originals, originals, pitches, families, classifier, reference, is_original=True)}
    for temperature, audio in zip(args.temperature, wavenet_audio):
        rows[wavenet_row(temperature)] = measure(audio)
    if spectral is not None:
        rows[SPECTRAL] = measure(spectral_reconstructions(spectral, notes, pitches, args.griffin_lim_iters)[:, :length])
    ddsp_results = {}
    for path, model, metadata in ddsp:
        audio, seconds = ddsp_reconstructions(model, z, notes, pitches, length)
        label = ddsp_row(path, decoding_for(model))
        rows[label] = measure(audio)
        ddsp_results[label] = {"checkpoint": str(path), "step": metadata.get("step"), "decode_seconds": seconds}
    return {
        "data": "/".join(Path(args.data).parts[-2:]),  # the split the table speaks of (test, or validation)
        "notes": names,
        "pitches": pitches,
        "families": [FAMILIES[family] for family in families],
        "instruments": len({examples[name]["instrument"] for name in names}),
        "length_seconds": length / SAMPLE_RATE,
        "seed": args.seed,
        "rows": rows,
        "wavenet": {"checkpoint": str(args.wavenet), "step": wavenet_metadata.get("step"),
                    "pitch_conditioned": bool(wavenet.config.pitch_classes),
                    "cross_entropy_nats": cross_entropy, "decode_seconds": decode_seconds,
                    "temperatures": args.temperature},
        "spectral": None if spectral is None else {
            "checkpoint": str(args.spectral), "step": spectral_metadata.get("step"),
            "pitch_conditioned": bool(spectral.config.pitch_classes), "griffin_lim_iters": args.griffin_lim_iters},
        "ddsp": ddsp_results,
        "classifier": {"feature_seconds": classifier.feature_seconds, "training_notes": classifier.training_notes,
                       "seconds": classifier.seconds, "features_cached": classifier.features_cached},
        "total_seconds": time.perf_counter() - started,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m train.evaluate",
        description="Pitch accuracy, family accuracy and STFT distance of original audio, WaveNet and spectral "
                    "reconstructions of held-out NSynth notes, as a markdown table.")
    parser.add_argument("--data", required=True, type=Path, help="the test split (json/wav folder)")
    parser.add_argument("--train-data", required=True, type=Path,
                        help="the training split (json/wav folder), for the family classifier")
    parser.add_argument("--wavenet", required=True, help="WaveNet autoencoder checkpoint")
    parser.add_argument("--spectral", help="spectral baseline checkpoint (no spectral row without it)")
    parser.add_argument("--ddsp", nargs="*", default=[], help="DDSP decoder checkpoints, one row each")
    parser.add_argument("--notes", type=positive(int), default=24, help="test notes to evaluate (default 24)")
    parser.add_argument("--out", required=True, type=Path,
                        help="markdown table to write; the raw numbers go beside it with the suffix .json, "
                             "and the classifier's cached features into the same folder")
    parser.add_argument("--seed", type=int, default=0, help="chooses the notes and WaveNet's samples (default 0)")
    parser.add_argument("--length-seconds", type=positive(float), default=NOTE_LENGTH / SAMPLE_RATE,
                        help="seconds of each note to decode and measure (default 4)")
    parser.add_argument("--temperature", type=non_negative_float, nargs="*", default=[1.0],
                        help="WaveNet sampling temperatures, one table row each; 0 = always the most likely "
                             "sample; none = no WaveNet rows, its encoder only gives the DDSP rows their Z "
                             "(default 1)")
    parser.add_argument("--griffin-lim-iters", type=positive(int), default=100,
                        help="phase reconstruction iterations for the spectral baseline (default 100)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where the models run (default: CUDA when present); the fast WaveNet decoder "
                             "needs the CPU")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.out.suffix == ".json":
        print("error: --out is the markdown table; its raw numbers are written beside it as .json.", file=sys.stderr)
        return 2
    try:
        results = evaluate(args)
    except ValueError as error:  # each project error says in a sentence what is wrong
        print(f"error: {error}", file=sys.stderr)
        return 1
    table = markdown_table(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
