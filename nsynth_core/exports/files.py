"""Files handed to visitors: a fresh folder per file under the outputs folder (old ones cleared out), the sounds
of the page's players, a grid's zip of wavs and Z, and a grid's cells joined into one track to play them all."""

import errno
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

from nsynth_core.audio.core import SAMPLE_RATE, for_playback, write_wav

OUTPUTS_ENV = "NSYNTH_OUTPUTS"
DEFAULT_OUTPUTS_DIR = Path(tempfile.gettempdir()) / "nsynth-explorer"
OUTPUT_MAX_AGE = 3600  # s; the page serves its own copy of a returned file, ours is only needed until then
PLAY_ALL_GAP = 0.3  # s of silence after each cell of the play-all track, so one cell is heard ending


class OutputError(ValueError):
    """A file for a visitor could not be written; the message says so in words."""


@contextmanager
def write_errors_explained(partial_folder=None):
    """An OSError while writing (a full disk, most often) becomes a sentence for the visitor, and
    `partial_folder`, holding what was partly written, is removed."""
    try:
        yield
    except OSError as error:
        if partial_folder is not None:
            shutil.rmtree(partial_folder, ignore_errors=True)
        if error.errno == errno.ENOSPC:
            raise OutputError("The server's disk is full, so the file could not be written; "
                              "try again later.") from None
        raise OutputError(f"The server could not write the file ({error.strerror or error}).") from None


def outputs_dir() -> Path:
    return Path(os.environ.get(OUTPUTS_ENV, DEFAULT_OUTPUTS_DIR))


def remove_old_outputs(directory, max_age: float = OUTPUT_MAX_AGE) -> int:
    """Deletes the output folders in `directory` last changed more than max_age seconds ago; returns how many."""
    cutoff = time.time() - max_age
    removed = 0
    for folder in Path(directory).iterdir():
        try:
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder)
                removed += 1
        except FileNotFoundError:  # another process sharing the folder removed it first
            continue
    return removed


def output_path(directory, filename: str) -> Path:
    """A fresh path for a file handed to a visitor: a folder of its own (so two visitors' files never clash and
    the name stays readable) in `directory`, after clearing out the old ones."""
    directory = Path(directory)
    with write_errors_explained():
        directory.mkdir(parents=True, exist_ok=True)
        remove_old_outputs(directory)
        return Path(tempfile.mkdtemp(dir=directory)) / filename


def wav_files(directory, sounds: list[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[Path]:
    """16-bit sounds as wavs of their own, for players, in one fresh folder (so a grid's cells clear out old
    outputs once). Players are handed files, not arrays: Gradio rewrites an array's cache file in place whenever
    the same sound is returned again, so a browser still fetching it from an earlier reply would get it half
    written."""
    folder = output_path(directory, "sound.wav").parent
    paths = [folder / f"sound-{index}.wav" for index in range(len(sounds))]
    with write_errors_explained(folder):
        for path, pcm in zip(paths, sounds):
            sf.write(path, pcm, sample_rate, format="WAV", subtype="PCM_16")
    return paths


def export_zip(path, grid, audio: np.ndarray, z: np.ndarray) -> Path:
    """A zip of every cell as a 16-bit wav (at the playback level) and its Z as .npy, with grid.json saying how
    each cell was mixed."""
    path = Path(path)
    with write_errors_explained(path.parent), zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for label, audio_i, z_i in zip(grid.labels, audio, z):
            wav, npy = io.BytesIO(), io.BytesIO()
            write_wav(wav, for_playback(audio_i))
            np.save(npy, z_i)
            archive.writestr(f"{label}.wav", wav.getvalue())
            archive.writestr(f"{label}.npy", npy.getvalue())
        description = {"rule": grid.rule, "corners": [note.name for note in grid.corners],
                       "cells": {label: w.round(6).tolist() for label, w in zip(grid.labels, grid.weights)}}
        archive.writestr("grid.json", json.dumps(description, indent=1))
    return path


def play_all(cells: np.ndarray, gap: float = PLAY_ALL_GAP, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The cells' sounds [cells, samples] (as their players hold them) one after another in grid order, each
    followed by `gap` s of silence: the whole grid in one track."""
    silence = np.zeros((len(cells), round(gap * sample_rate)), dtype=cells.dtype)
    return np.concatenate([cells, silence], axis=1).reshape(-1)


def play_all_label(labels: list[str], line: bool, gap: float = PLAY_ALL_GAP) -> str:
    """What the play-all track holds, in the order heard."""
    order = "from A to B" if line else "row by row from the top left"
    shown = labels if len(labels) <= 4 else [*labels[:3], "…", labels[-1]]
    return f"Play all: the {len(labels)} cells {order} ({', '.join(shown)}), {gap:g} s apart"
