"""A point of the map as a sound: the nearest notes' Z blended by inverse map distance."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from nsynth_core.audio.core import NOTE_LENGTH, SAMPLE_RATE
from nsynth_core.explorer.embedding_map import EmbeddingMap, save_map
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.loaded_models import encode_notes, load_model, stacked_z
from nsynth_core.explorer.notes import ExplorerError
from nsynth_core.explorer.interpolation import mix
from nsynth_core.explorer.map_points import MAX_COORDINATE, NEIGHBOURS, MapPointError, neighbour_weights
from tests.app_helpers import write_tiny_checkpoints

SQUARE = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [10.0, 10.0]])


def test_a_point_on_a_note_is_that_note_alone():
    nearest, weights = neighbour_weights(SQUARE, SQUARE[3])
    assert nearest[0] == 3 and weights.tolist() == [1.0, 0.0, 0.0]


def test_equidistant_notes_weigh_the_same_and_the_far_one_is_left_out():
    nearest, weights = neighbour_weights(SQUARE, [1.0, 1.0], k=4)
    assert sorted(nearest.tolist()) == [0, 1, 2, 3]
    np.testing.assert_allclose(weights, 0.25)


def test_weights_fall_with_distance_and_sum_to_one():
    nearest, weights = neighbour_weights(SQUARE, [0.5, 0.2])
    assert nearest.tolist() == [0, 1, 2]  # nearest first; three by default
    assert len(nearest) == NEIGHBOURS and weights[0] > weights[1] > weights[2] > 0
    assert weights.sum() == pytest.approx(1.0)
    distances = np.linalg.norm(SQUARE[nearest] - [0.5, 0.2], axis=-1)
    np.testing.assert_allclose(weights * distances, weights[0] * distances[0])  # inversely proportional


def test_a_small_map_gives_what_it_has_and_an_empty_one_refuses():
    assert len(neighbour_weights(SQUARE[:2], [5.0, 5.0])[0]) == 2
    with pytest.raises(MapPointError):
        neighbour_weights(np.zeros((0, 2)), [0.0, 0.0])


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """Tiny checkpoints and four bundled tones whose map positions are the corners of SQUARE."""
    torch.set_num_threads(1)
    checkpoints = tmp_path_factory.mktemp("checkpoints")
    wavenet_path, spectral_path, ddsp_path = write_tiny_checkpoints(checkpoints)
    wavenet = load_model(wavenet_path)
    assets = tmp_path_factory.mktemp("assets")
    (assets / "notes").mkdir()
    pitches = [48, 55, 62, 69]
    t = np.arange(NOTE_LENGTH) / SAMPLE_RATE
    for i, pitch in enumerate(pitches):
        sf.write(assets / "notes" / f"n{i}.wav", 0.5 * np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * t),
                 SAMPLE_RATE)
    (assets / "notes.json").write_text(json.dumps([
        {"name": f"n{i}", "file": f"notes/n{i}.wav", "family": "test", "pitch": p, "source": "test"}
        for i, p in enumerate(pitches)]))
    names = np.array([f"n{i}" for i in range(4)])
    save_map(EmbeddingMap(names=names, families=np.array(["test"] * 4), pitches=np.array(pitches),
                          sources=np.array(["test"] * 4), features=np.zeros((4, 16), np.float32),
                          positions=SQUARE[:4].astype(np.float32), checkpoint=wavenet.fingerprint), assets)
    app = Explorer(checkpoints, assets)
    return app, wavenet, load_model(spectral_path), load_model(ddsp_path)


def test_the_explorer_blends_the_neighbours_z_frame_by_frame(mapped):
    app, wavenet, _, _ = mapped
    blend, notes = app.map_blend(wavenet, (0.4, 0.1))
    assert [note.id for note in notes] == ["n0", "n1", "n2"]
    np.testing.assert_allclose(blend.z, mix(stacked_z(encode_notes(wavenet, notes)), blend.weights), rtol=1e-6)
    assert blend.z.shape == encode_notes(wavenet, notes[:1])[0].z.shape  # frames stay aligned, not averaged away


RANGE = "must be a number from -1,000,000 to 1,000,000, not"


@pytest.mark.parametrize("point, refused", [
    ((1e308, 0.0), f"Map x {RANGE} 1e+308."),
    ((0.0, 10 ** 400), f"Map y {RANGE} 1000000000000000000… (401 characters)."),
    ((float("nan"), 0.0), f"Map x {RANGE} nan."), (("far", 0.0), f"Map x {RANGE} 'far'.")])
def test_a_point_off_any_map_is_refused_naming_the_coordinate_and_its_range(mapped, point, refused):
    app, wavenet, _, _ = mapped
    with pytest.raises(MapPointError) as refusal:
        app.map_blend(wavenet, point)
    assert str(refusal.value) == refused


def test_the_farthest_allowed_point_still_blends(mapped):
    app, wavenet, _, _ = mapped
    blend, notes = app.map_blend(wavenet, (MAX_COORDINATE, -MAX_COORDINATE))
    assert np.isfinite(blend.z).all() and blend.weights.sum() == pytest.approx(1.0)
    assert notes[0].id == "n1"  # SQUARE's bottom-right corner (2, 0) is the nearest


def test_a_map_point_is_decoded_at_the_nearest_notes_pitch_octaves_away_or_the_chosen_one(mapped, monkeypatch):
    app, wavenet, _, ddsp = mapped
    given = []
    real_decode = ddsp.decoding.decode
    monkeypatch.setattr(ddsp.decoding, "decode",
                        lambda z, pitch, *args: given.append(pitch.tolist()) or real_decode(z, pitch, *args))
    audio, blend, notes = app.play_point(ddsp, wavenet, (1.9, 1.7), 1.0, 3200)
    assert audio.shape == (3200,) and notes[0].id == "n3" and given[-1] == [69]
    app.play_point(ddsp, wavenet, (1.9, 1.7), 1.0, 3200, pitch=30)
    assert given[-1] == [30]
    app.play_point(ddsp, wavenet, (1.9, 1.7), 1.0, 3200, octaves=-1)
    assert given[-1] == [57]  # the nearest note's own pitch, an octave down


def test_a_decoder_that_reads_another_z_cannot_play_the_map(mapped):
    app, wavenet, spectral, _ = mapped
    with pytest.raises(ExplorerError, match="does not read"):
        app.play_point(spectral, wavenet, (0.0, 0.0), 1.0, NOTE_LENGTH)


def test_grids_and_reconstructions_play_at_a_chosen_pitch_or_octaves_away(mapped, monkeypatch):
    from nsynth_core.explorer.grids import make_grid, played_pitches

    assert played_pitches([48, None], octaves=-1) == [36, None] and played_pitches([48, None], pitch=70) == [70, 70]
    app, wavenet, _, ddsp = mapped
    given = []
    real_decode = ddsp.decoding.decode
    monkeypatch.setattr(ddsp.decoding, "decode",
                        lambda z, pitch, *args: given.append(pitch.tolist()) or real_decode(z, pitch, *args))
    grid = make_grid(list(app.bundled.values()), 2)
    app.decode_grid(ddsp, wavenet, grid, 1.0, 640, octaves=1)
    assert given[-1] == [60, 67, 74, 81]
    app.reconstruct(ddsp, wavenet, app.bundled["n2"], 1.0, 640, pitch=90)
    assert given[-1] == [90]
