"""A line between two notes or a grid between four, as the page asks for one: which corners, how many cells, how
they are mixed (interpolation.py), the pitch each cell is played at, and the cells' Z."""

import math
from dataclasses import dataclass

import numpy as np

from nsynth_core.explorer.interpolation import GRID_SIZES, cell_labels, grid_weights, line_weights, mix
from nsynth_core.explorer.loaded_models import LoadedModel, encode_notes, stacked_z
from nsynth_core.explorer.notes import ExplorerError, Note


@dataclass(frozen=True, eq=False)
class Grid:
    corners: list[Note]
    weights: np.ndarray  # [cells, corners]
    labels: list[str]  # one per cell, row-major
    rule: str

    def mixes(self, shown: float = 0.05) -> list[str]:
        """What each cell is made of, e.g. "A 75 % + B 25 %": the corners (A, B, C, D) weighing at least
        `shown`, heaviest first."""
        return [" + ".join(f"{'ABCD'[corner]} {weights[corner]:.0%}".replace("%", " %")
                           for corner in np.argsort(-weights, kind="stable") if weights[corner] >= shown)
                for weights in self.weights]


def make_grid(corners: list[Note], size: int, rule: str = "bilinear") -> Grid:
    """Two corners: a line of `size` steps; four corners (top-left, top-right, bottom-left, bottom-right): a
    size x size grid mixed by `rule` ("bilinear" or "distance", Open NSynth Super's)."""
    if len(corners) == 2:
        weights = line_weights(size)
        labels = [f"step{i + 1}" for i in range(size)]
    elif len(corners) == 4:
        weights = grid_weights(size, rule).reshape(size * size, 4)
        labels = cell_labels(size)
    else:
        raise ExplorerError(f"Choose 2 notes for a line or 4 for a grid, not {len(corners)}.")
    return Grid(corners=list(corners), weights=weights, labels=labels, rule=rule if len(corners) == 4 else "line")


def grid_size(value) -> int:
    """Cells per side as a page or an API caller gives it: a whole number of GRID_SIZES (3.0 is taken as 3)."""
    try:
        size = float(value)
    except (TypeError, ValueError):
        size = math.nan
    if not (size.is_integer() and int(size) in GRID_SIZES):
        raise ExplorerError(f"The grid size must be a whole number from {min(GRID_SIZES)} to {max(GRID_SIZES)}, "
                            f"not {value!r}.")
    return int(size)


def grid_pitches(grid: Grid) -> list[int | None]:
    """Each cell takes the pitch of the corner it leans on most (a pitch-conditioned decoder needs one)."""
    return [grid.corners[int(np.argmax(w))].pitch for w in grid.weights]


def played_pitches(pitches: list[int | None], pitch: int | None = None, octaves: int = 0) -> list[int | None]:
    """The pitch each note is decoded at: `pitch` for all of them when given, else each note's own shifted by
    `octaves` (the pitch-conditioned decoders play any timbre at any pitch)."""
    if pitch is not None:
        return [int(pitch)] * len(pitches)
    return [None if own is None else own + 12 * int(octaves) for own in pitches]


def grid_z(encoder: LoadedModel, grid: Grid) -> np.ndarray:
    """Each cell's Z [cells, ...]: the corners' Z from `encoder`, mixed by the grid's weights."""
    return mix(stacked_z(encode_notes(encoder, grid.corners)), grid.weights)
