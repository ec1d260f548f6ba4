"""Any point of the map as a sound: the Z of the notes nearest to it, blended by how near each one is.

The rule: the NEIGHBOURS notes closest to the point in the map (Euclidean distance in its 2-D coordinates),
weighted by inverse distance and normalised to sum 1; a point on a note (closer than EXACT_HIT) is that note
alone. The blend mixes Z frame by frame (interpolation.mix), so every frame stays aligned in time with the
neighbours' frames. Map distances say which notes are similar, not by how much: the weights only rank the
neighbours, they are not a distance in Z.
"""

import math
from dataclasses import dataclass

import numpy as np

NEIGHBOURS = 3  # a triangle around most points of a 2-D map; a fourth adds little but blur
EXACT_HIT = 1e-6  # map units: a click this close to a note plays the note itself
# Map units: far beyond any map (UMAP places notes within tens of units of the origin), and near enough that the
# distances to the notes stay finite (squaring 1e155 overflows a float64).
MAX_COORDINATE = 1e6
SHOWN_CHARACTERS = 20  # of a refused value quoted in a message


class MapPointError(ValueError):
    pass


@dataclass(frozen=True)
class MapBlend:
    z: np.ndarray  # [frames, channels]: the blended Z
    neighbours: np.ndarray  # [k] indices into the map's notes, nearest first
    weights: np.ndarray  # [k] summing to 1


def map_point(x, y) -> tuple[float, float]:
    """(x, y) of a point of the map as a page or an API caller gives them; MapPointError names a coordinate that is
    not a number within MAX_COORDINATE of the origin."""
    return map_coordinate(x, "Map x"), map_coordinate(y, "Map y")


def map_coordinate(value, label: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond any float
        number = math.nan
    if not abs(number) <= MAX_COORDINATE:
        raise MapPointError(f"{label} must be a number from {-MAX_COORDINATE:,.0f} to {MAX_COORDINATE:,.0f}, "
                            f"not {shown_value(value)}.")
    return number


def shown_value(value) -> str:
    try:
        text = repr(value)
    except ValueError:  # an integer of more digits than Python writes out
        return "an integer too long to write out"
    return text if len(text) <= SHOWN_CHARACTERS else f"{text[:SHOWN_CHARACTERS - 1]}… ({len(text)} characters)"


def neighbour_weights(positions: np.ndarray, point, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the k notes nearest to `point`, nearest first; their inverse-distance weights summing to 1)."""
    positions = np.asarray(positions, dtype=np.float64)
    if len(positions) == 0:
        raise MapPointError("The map has no notes to blend.")
    distances = np.linalg.norm(positions - np.asarray(point, dtype=np.float64), axis=-1)
    nearest = np.argsort(distances, kind="stable")[:k]
    if distances[nearest[0]] < EXACT_HIT:
        weights = np.zeros(len(nearest))
        weights[0] = 1.0
    else:
        weights = 1.0 / distances[nearest]
        weights /= weights.sum()
    return nearest, weights
