"""Open NSynth Super's instrument: every cell of an N x N grid between four corners, decoded at several pitches.

A cell's Z is the corners' Z mixed by the grid's weights (interpolation.py); each cell is then decoded once per
pitch by a pitch-conditioned decoder. 9 x 9 cells at 16 pitches are 1 296 notes: too many for one batch, so they
go through the decoder in chunks, in cell-major order, and only the audio is kept.
"""

from dataclasses import dataclass

import numpy as np
import torch

from nsynth_core.audio.core import NOTE_LENGTH
from nsynth_core.explorer.decoding import Decoding
from nsynth_core.explorer.interpolation import cell_labels, grid_weights, mix

ONS_PITCHES = tuple(range(24, 85, 4))  # Open NSynth Super's 16 pitches, MIDI 24, 28, ..., 84
DECODE_CHUNK = 64  # notes per decoder call: bounds the working memory of a batch (a few MB per DDSP note)


class MultigridError(ValueError):
    pass


@dataclass(frozen=True)
class Multigrid:
    size: int
    pitches: tuple[int, ...]  # MIDI, ascending
    labels: list[str]  # one per cell, reading order
    weights: np.ndarray  # [cells, 4] corner weights
    audio: np.ndarray  # [cells, pitches, length] float32


def decode_multigrid(decoding: Decoding, corner_z: np.ndarray, size: int = 9, pitches=ONS_PITCHES,
                     length: int = NOTE_LENGTH, rule: str = "distance", temperature: float = 1.0, seed: int = 0,
                     chunk: int = DECODE_CHUNK, progress=None) -> Multigrid:
    """Every cell of a size x size grid between the four corners' Z [4, ...] (top-left, top-right, bottom-left,
    bottom-right), decoded at every pitch. progress(done, total) counts the notes decoded."""
    if not decoding.needs_pitch:
        raise MultigridError(f"This {decoding.label} decoder is not conditioned on pitch, so it cannot play a cell "
                             "at several pitches.")
    pitches = tuple(sorted(set(int(p) for p in pitches)))
    if not pitches:
        raise MultigridError("Choose at least one pitch.")
    weights = grid_weights(size, rule).reshape(size * size, 4)
    cell_z = torch.from_numpy(mix(corner_z, weights))
    cells, total = len(weights), len(weights) * len(pitches)
    note_cells = np.arange(total) // len(pitches)
    note_pitches = torch.tensor(pitches).repeat(cells)
    audio = np.empty((total, length), np.float32)
    for start in range(0, total, chunk):
        stop = min(start + chunk, total)
        audio[start:stop] = decoding.decode(cell_z[note_cells[start:stop]], note_pitches[start:stop], length,
                                            temperature, seed)
        if progress:
            progress(stop, total)
    return Multigrid(size=size, pitches=pitches, labels=cell_labels(size), weights=weights,
                     audio=audio.reshape(cells, len(pitches), length))
