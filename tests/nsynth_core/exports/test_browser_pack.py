"""A multigrid packed for the page: the file holds every note where the index says, at the playback level."""

import json

import numpy as np
import pytest

from nsynth_core.audio.core import PLAYBACK_PEAK, playback_pcm16
from nsynth_core.exports.browser_pack import write_browser_pack
from nsynth_core.explorer.interpolation import cell_labels, grid_weights
from nsynth_core.explorer.multigrid import Multigrid

PITCHES = (48, 60, 72, 84)


@pytest.fixture
def grid():
    rng = np.random.default_rng(0)
    audio = (rng.normal(size=(9, len(PITCHES), 1000)) * rng.uniform(0.01, 0.5, size=(9, len(PITCHES), 1))
             ).astype(np.float32)
    return Multigrid(size=3, pitches=PITCHES, labels=cell_labels(3), weights=grid_weights(3, "distance"),
                     audio=audio)


def test_every_note_reads_back_from_where_the_index_says(grid, tmp_path):
    path = tmp_path / "grid.pcm"
    index = json.loads(json.dumps(write_browser_pack(path, grid)))  # what the page receives
    assert (index["rows"], index["cols"], index["pitches"], index["length"]) == (3, 3, list(PITCHES), 1000)
    assert index["sample_rate"] == 16000 and index["labels"][:2] == ["r1c1", "r1c2"]
    samples = np.fromfile(path, "<i2")
    assert len(samples) == 9 * len(PITCHES) * 1000
    for cell in (0, 4, 8):
        for pitch in range(len(PITCHES)):
            start = index["offsets"][cell][pitch]
            note = samples[start:start + index["length"]]
            np.testing.assert_array_equal(note, playback_pcm16(grid.audio[cell, pitch]))
            # each note at the players' peak, however quiet it was decoded
            assert np.abs(note).max() / 32767 == pytest.approx(PLAYBACK_PEAK, abs=1e-4)


def test_an_unwritable_folder_is_explained(grid, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError):
        write_browser_pack(blocker / "grid.pcm", grid)
