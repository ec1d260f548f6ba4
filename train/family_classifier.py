"""An instrument-family classifier trained on real notes: the evaluation's analogue of the paper's Inception score.

A note is described by its first seconds, peak-normalised so that loudness does not decide: statistics of its
log-mel spectrogram and MFCCs, its loudness envelope, spectral contrast and flatness. A random forest maps them to
one of NSynth's 11 families. Trained on real audio of the training split and applied to reconstructions of
held-out instruments, its accuracy says how much of an instrument's timbre a reconstruction keeps. (On the
rendered GM SoundFonts, held-out instruments, 1.5 s: a random forest 54 %, logistic regression 32-40 %.)
"""

import itertools
import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from tqdm import tqdm

from nsynth_core.audio.core import SAMPLE_RATE, normalize_loudness
from nsynth_core.data.nsynth import read_examples_json, read_wav

FEATURE_SECONDS = 1.5  # the attack and the start of the held part, where families differ most
FEATURE_PEAK = 0.9  # every note is described at one level, so the classifier judges timbre, not loudness
N_FFT = 1024
HOP_LENGTH = 256
N_MELS = 64
N_MFCC = 20
ENVELOPE_POINTS = 24
TREES = 300
NOTES_PER_FAMILY = 200  # accuracy on held-out instruments stops growing at about 150 (instruments, not notes, limit it)


class ClassifierError(ValueError):
    """Training data the family classifier cannot learn from."""


def note_features(audio: np.ndarray, seconds: float = FEATURE_SECONDS) -> np.ndarray:
    """A fixed-length feature vector of a mono note's first `seconds`."""
    window = normalize_loudness(np.asarray(audio)[: round(seconds * SAMPLE_RATE)], FEATURE_PEAK)
    frames = dict(n_fft=N_FFT, hop_length=HOP_LENGTH)
    power = librosa.feature.melspectrogram(y=window, sr=SAMPLE_RATE, n_mels=N_MELS, **frames)
    log_mel = librosa.power_to_db(power, amin=1e-8)  # floor at -80 dB so silent bands do not dominate
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=N_MFCC)
    loudness = librosa.power_to_db(power.sum(axis=0), ref=np.max, amin=1e-8)
    envelope = np.interp(np.linspace(0, len(loudness) - 1, ENVELOPE_POINTS), np.arange(len(loudness)), loudness)
    contrast = librosa.feature.spectral_contrast(y=window, sr=SAMPLE_RATE, **frames)
    flatness = librosa.feature.spectral_flatness(y=window, **frames)
    change = lambda x: np.abs(np.diff(x, axis=1)).mean(axis=1)  # how fast each band moves: onsets, vibrato
    return np.concatenate([
        log_mel.mean(axis=1), log_mel.std(axis=1), change(log_mel),
        mfcc.mean(axis=1), mfcc.std(axis=1), change(mfcc),
        envelope, contrast.mean(axis=1), contrast.std(axis=1), [np.log(flatness.mean() + 1e-9)],
    ]).astype(np.float32)


def round_robin(groups) -> list:
    """One item from each group in turn, then the second of each, and so on: [[a1, a2], [b1]] -> [a1, b1, a2]."""
    return [item for row in itertools.zip_longest(*groups) for item in row if item is not None]


def training_notes(examples: dict, per_family: int, seed: int) -> list[str]:
    """Up to `per_family` note names of each family, spread evenly over that family's instruments."""
    rng = np.random.default_rng(seed)
    by_family = defaultdict(lambda: defaultdict(list))
    for name, example in sorted(examples.items()):
        by_family[int(example["instrument_family"])][int(example["instrument"])].append(name)
    chosen = []
    for family in sorted(by_family):
        instruments = [list(rng.permutation(names)) for _, names in sorted(by_family[family].items())]
        chosen += round_robin(instruments)[:per_family]
    return chosen


@dataclass
class FamilyClassifier:
    model: RandomForestClassifier
    feature_seconds: float
    training_notes: int
    seconds: float  # to train it: feature extraction (unless cached) and fitting
    features_cached: bool

    def predict(self, audio: np.ndarray) -> np.ndarray:
        """Family index (into nsynth_core.data.nsynth.FAMILIES) of each note of audio [B, samples]."""
        features = np.stack([note_features(note, self.feature_seconds) for note in audio])
        return self.model.predict(features)


def train_family_classifier(train_root, feature_seconds: float = FEATURE_SECONDS, seed: int = 0,
                            cache_dir=None, per_family: int = NOTES_PER_FAMILY) -> FamilyClassifier:
    """Fit the classifier on real notes of a json/wav training split.

    Features take most of the time; with `cache_dir` they are kept there (an .npz, no pickle) and reused while
    the split, window, sample and seed stay the same. Fitting itself takes seconds and is always redone.
    """
    start = time.perf_counter()
    train_root = Path(train_root)
    key = json.dumps({"data": str(train_root.resolve()), "feature_seconds": feature_seconds, "seed": seed,
                      "per_family": per_family, "n_fft": N_FFT, "hop_length": HOP_LENGTH, "n_mels": N_MELS,
                      "n_mfcc": N_MFCC, "envelope_points": ENVELOPE_POINTS})
    cache = None if cache_dir is None else Path(cache_dir) / "family_classifier_features.npz"
    features = families = None
    cached = False
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            if str(stored["key"]) == key:
                features, families, cached = stored["features"], stored["families"], True
    if features is None:
        examples = read_examples_json(train_root)
        names = training_notes(examples, per_family, seed)
        features = np.stack([note_features(read_wav(train_root / "audio" / f"{name}.wav"), feature_seconds)
                             for name in tqdm(names, desc="classifier features", unit="note")])
        families = np.array([int(examples[name]["instrument_family"]) for name in names])
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, key=key, features=features, families=families)
    if len(np.unique(families)) < 2:
        raise ClassifierError(f"'{train_root}' holds notes of only one instrument family; "
                              "the family classifier needs at least two.")
    model = RandomForestClassifier(TREES, random_state=seed).fit(features, families)
    return FamilyClassifier(model, feature_seconds, len(families), time.perf_counter() - start, cached)
