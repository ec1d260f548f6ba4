"""The page's ready example (assets/example_grid.*) against what the shipped checkpoints decode now, and the
play-all track every grid gets."""

import librosa
import numpy as np
import pytest

from nsynth_core.exports import example_grid
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.grids import make_grid
from nsynth_core.explorer.interpolation import cell_labels
from nsynth_core.explorer.notes import bundled_notes
from nsynth_core.audio.core import SAMPLE_RATE
from nsynth_core.exports.files import play_all, play_all_label


@pytest.fixture(scope="module")
def shipped():
    return example_grid.load_example()


def test_the_shipped_example_is_what_the_shipped_checkpoints_decode_now(shipped):
    """A retrained checkpoint, a changed decoder or other corners make the asset stale: rebuild it with
    `python -m nsynth_core.exports.example_grid`."""
    decoder, encoder = example_grid.shipped_models()
    assert shipped.checkpoints == {"decoder": decoder.fingerprint, "encoder": encoder.fingerprint}
    fresh = example_grid.decode_example(Explorer(), decoder, encoder)
    assert (shipped.corners, shipped.labels, shipped.mixes) == (fresh.corners, fresh.labels, fresh.mixes)
    assert shipped.cells.shape == fresh.cells.shape == (example_grid.SIZE ** 2, example_grid.SECONDS * SAMPLE_RATE)
    # DDSP decodes deterministically; a float summed in another order may move a sample by one step
    assert np.abs(shipped.cells.astype(int) - fresh.cells).max() <= 1


def test_the_example_cells_play_their_corners_pitches_and_differ_in_timbre(shipped):
    audio = shipped.cells.astype(np.float32) / 32768
    f0, voiced, _ = librosa.pyin(audio, sr=SAMPLE_RATE, fmin=100, fmax=1000, frame_length=1024)
    heard = [float(np.median(librosa.hz_to_midi(f[v]))) for f, v in zip(f0, voiced)]
    notes = {note.id: note for note in bundled_notes()}
    leaning_on = [shipped.corners[int(np.argmax(w))] for w in make_grid(
        [notes[note_id] for note_id in shipped.corners], example_grid.SIZE, example_grid.RULE).weights]
    assert np.allclose(heard, [notes[note_id].pitch for note_id in leaning_on], atol=0.5)
    corner_cells = audio[[0, example_grid.SIZE - 1, -example_grid.SIZE, -1]]
    centroids = librosa.feature.spectral_centroid(y=corner_cells, sr=SAMPLE_RATE).mean(axis=-1).ravel()
    assert centroids.max() > 1.5 * centroids.min()  # contrasting corners, not four alike


def test_play_all_joins_the_cells_in_order_with_silence_between():
    cells = np.arange(1, 7, dtype=np.int16).reshape(3, 2)
    track = play_all(cells, gap=0.5, sample_rate=4)
    assert track.dtype == np.int16
    assert track.tolist() == [1, 2, 0, 0, 3, 4, 0, 0, 5, 6, 0, 0]
    assert play_all_label(cell_labels(3), line=False, gap=0.5) == (
        "Play all: the 9 cells row by row from the top left (r1c1, r1c2, r1c3, …, r3c3), 0.5 s apart")
    assert "from A to B (step1, step2, step3)" in play_all_label(["step1", "step2", "step3"], line=True)
