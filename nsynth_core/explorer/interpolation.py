"""Mixing embeddings: a line between two notes, or a grid between four corners (NSynth Super style).

Corners sit on the unit square in reading order: 0 = top-left (0, 0), 1 = top-right (1, 0),
2 = bottom-left (0, 1), 3 = bottom-right (1, 1), as (x, y) with y growing downwards like the grid's rows.
A weight array [..., corners] says how much of each corner goes into a cell; `mix` applies it to Z.
"""

import numpy as np

GRID_SIZES = tuple(range(2, 10))  # cells per side, up to Open NSynth Super's 9 x 9
MIXING_RULES = ("bilinear", "distance")
CORNER_POSITIONS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


class InterpolationError(ValueError):
    pass


def line_weights(steps: int) -> np.ndarray:
    """[steps, 2]: from all of the first note to all of the second, evenly spaced."""
    if steps < 2:
        raise InterpolationError(f"A line needs at least 2 steps, got {steps}.")
    t = np.linspace(0.0, 1.0, steps)
    return np.stack([1.0 - t, t], axis=-1)


def cell_positions(size: int) -> np.ndarray:
    """[size, size, 2]: the (x, y) of every cell of a size x size grid spanning the unit square."""
    coordinate = np.linspace(0.0, 1.0, size)
    x, y = np.meshgrid(coordinate, coordinate)  # x varies along a row, y down the columns
    return np.stack([x, y], axis=-1)


def cell_labels(size: int) -> list[str]:
    """r1c1, r1c2, ...: the cells of a size x size grid in reading order (the order of its weights reshaped)."""
    return [f"r{row + 1}c{column + 1}" for row in range(size) for column in range(size)]


def bilinear_weights(size: int) -> np.ndarray:
    """[size, size, 4]: the product of the two linear interpolations along x and y."""
    x, y = np.moveaxis(cell_positions(size), -1, 0)
    return np.stack([(1 - x) * (1 - y), x * (1 - y), (1 - x) * y, x * y], axis=-1)


def distance_weights(size: int) -> np.ndarray:
    """[size, size, 4]: Open NSynth Super's rule, max(1 - distance to the corner, 0) normalised to sum 1.

    Unlike bilinear mixing, a cell on an edge ignores the far corners entirely and the centre weighs all four
    equally; every cell is within 1/sqrt(2) of some corner, so the sum is never zero.
    """
    positions = cell_positions(size)
    distances = np.linalg.norm(positions[:, :, None, :] - CORNER_POSITIONS, axis=-1)
    weights = np.maximum(1.0 - distances, 0.0)
    return weights / weights.sum(axis=-1, keepdims=True)


def grid_weights(size: int, rule: str = "bilinear") -> np.ndarray:
    if size not in GRID_SIZES:
        raise InterpolationError(f"Grid size must be one of {GRID_SIZES}, got {size}.")
    if rule == "bilinear":
        return bilinear_weights(size)
    if rule == "distance":
        return distance_weights(size)
    raise InterpolationError(f"Unknown mixing rule {rule!r}; choose one of {MIXING_RULES}.")


def mix(embeddings: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """embeddings [corners, frames, channels], weights [..., corners] -> [..., frames, channels]."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    if weights.shape[-1] != embeddings.shape[0]:
        raise InterpolationError(f"{weights.shape[-1]} weights per cell for {embeddings.shape[0]} embeddings.")
    return np.tensordot(weights, embeddings, axes=([-1], [0]))
