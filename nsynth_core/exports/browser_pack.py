"""A multigrid packed for a page to play: one file of little-endian 16-bit PCM holding every cell at every
pitch back to back (cell-major, as multigrid.py decodes them), and a JSON-ready index saying where each note
starts. A page fetches the file once and cuts AudioBuffers out of it with no parsing of its own; a zip of wavs
would need an unzipper in the page.
"""

from pathlib import Path

from nsynth_core.audio.core import SAMPLE_RATE, playback_pcm16
from nsynth_core.exports.files import write_errors_explained
from nsynth_core.explorer.multigrid import Multigrid


def write_browser_pack(path, grid: Multigrid, sample_rate: int = SAMPLE_RATE) -> dict:
    """Writes the grid's notes to `path` at the playback level, each note normalised on its own (as the
    SoundFont's samples are); returns the index: rows, cols, pitches, sample_rate, length (samples per note),
    labels (reading order) and offsets[cell][pitch] (in samples from the start of the file)."""
    path = Path(path)
    cells, pitches, length = grid.audio.shape
    with write_errors_explained(path.parent), open(path, "wb") as file:
        for cell in grid.audio:
            for note in cell:
                file.write(playback_pcm16(note).astype("<i2").tobytes())
    return {"rows": grid.size, "cols": grid.size, "pitches": list(grid.pitches), "sample_rate": sample_rate,
            "length": length, "labels": list(grid.labels),
            "offsets": [[(cell * pitches + pitch) * length for pitch in range(pitches)] for cell in range(cells)]}
