"""The walk-through's numbers: what the page plays and draws must be what the models really do."""

import numpy as np
import pytest
import torch

from tests.app_helpers import write_tiny_checkpoints
from nsynth_core.explorer.loaded_models import encode_notes, encoding_precision, load_model, stacked_z
from nsynth_core.explorer.notes import Note
from webapp import teaching
from nsynth_core.audio.core import NOTE_LENGTH, mu_law_decode, mu_law_encode


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    wavenet, spectral, ddsp = write_tiny_checkpoints(tmp_path_factory.mktemp("checkpoints"))
    return load_model(wavenet), load_model(spectral), load_model(ddsp)


def tone_note(name: str, frequency: float, pitch: int = 60) -> Note:
    t = np.arange(NOTE_LENGTH) / 16000
    audio = (0.17 * np.sin(2 * np.pi * frequency * t) * np.exp(-t)).astype(np.float32)
    return Note(id=name, name=name, audio=audio, pitch=pitch)


@pytest.fixture(scope="module")
def notes():
    return tone_note("low", 220.0, 57), tone_note("high", 523.25, 72)


def test_the_quantised_note_is_the_mu_law_round_trip(notes):
    audio = notes[0].audio
    quantised = teaching.mu_law_round_trip(audio)
    np.testing.assert_array_equal(quantised, mu_law_decode(mu_law_encode(audio)))
    assert len(np.unique(quantised)) <= 256 < len(np.unique(audio))
    figure = teaching.sound_figure(audio)
    drawn = {trace.name: np.asarray(trace.y) for trace in figure.data}
    np.testing.assert_array_equal(drawn["8-bit mu-law"], quantised)


def test_the_code_heat_map_is_the_encoders_z(models, notes):
    wavenet, _, _ = models
    note = notes[0]
    with torch.no_grad():  # in the note's own precision, as every other use of its Z
        z = wavenet.model.encode(torch.from_numpy(note.audio)[None], encoding_precision(wavenet, note))[0].numpy()
    figure = teaching.code_figure(wavenet, note)
    heat_map, average = [trace for trace in figure.data if trace.type == "heatmap"]
    assert np.asarray(heat_map.z).shape == (16, NOTE_LENGTH // 512) == z.T.shape
    np.testing.assert_allclose(np.asarray(heat_map.z), z.T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(average.z)[:, 0], z.mean(axis=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("preset", ["cpu-small", "paper"])
def test_the_drawn_receptive_field_is_the_models(preset):
    from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig
    config = WaveNetConfig.preset(preset)
    assert teaching.drawn_receptive_field(WaveNetAutoencoder(config)) == config.receptive_field


def test_the_receptive_field_is_shaded_on_the_waveform(models, notes):
    wavenet, _, _ = models
    step = 3000
    figure = teaching.receptive_field_figure(wavenet, notes[0], step)
    shaded = [shape for shape in figure.layout.shapes if shape.name == "receptive field"]
    assert shaded and all(shape.x1 - shape.x0 + 1 == wavenet.model.config.receptive_field for shape in shaded)
    assert all(shape.x1 == step - 1 for shape in shaded)  # the newest sample seen is the one before


def test_the_windowed_prediction_equals_the_whole_notes(models, notes):
    wavenet, _, _ = models
    note = notes[0]
    audio = torch.from_numpy(note.audio)[None]
    z = torch.from_numpy(stacked_z(encode_notes(wavenet, [note])))
    with torch.no_grad():
        whole = wavenet.model.decode_logits(audio, z)[0]
    for step in (0, 700, 5000, NOTE_LENGTH - 1):  # before, across and after one receptive field and frame
        torch.testing.assert_close(teaching.output_logits(wavenet, note, step), whole[:, step], rtol=1e-4,
                                   atol=1e-5)


def test_the_distribution_sums_to_one_and_sharpens_as_the_temperature_falls(models, notes):
    wavenet, _, _ = models
    logits = teaching.output_logits(wavenet, notes[0], 4000)
    entropies = []
    for temperature in (2.0, 1.0, 0.5, 0.1):
        probabilities = teaching.distribution(logits, temperature)
        assert probabilities.shape == (256,) and probabilities.sum() == pytest.approx(1.0)
        entropies.append(teaching.entropy_bits(probabilities))
    assert all(hotter > colder for hotter, colder in zip(entropies, entropies[1:]))
    greedy = teaching.distribution(logits, 0.0)
    assert greedy[int(logits.argmax())] == 1.0 and greedy.sum() == 1.0
    assert teaching.drawn_level(logits, 0.0, seed=3) == int(logits.argmax()) - 128


def test_the_drawn_sample_is_reproducible_with_the_seed(models, notes):
    wavenet, _, _ = models
    logits = torch.zeros(256)  # every level alike, so different seeds must draw differently
    drawn = [teaching.drawn_level(logits, 1.0, seed) for seed in range(8)]
    assert drawn == [teaching.drawn_level(logits, 1.0, seed) for seed in range(8)]
    assert len(set(drawn)) > 1
    figure = teaching.distribution_figure(wavenet, notes[0], 4000, 1.0, seed=5)
    bars = figure.data[0]
    drawn_here = teaching.drawn_level(teaching.output_logits(wavenet, notes[0], 4000), 1.0, 5)
    assert [level for level, colour in zip(bars.x, bars.marker.color) if colour == "crimson"] == [drawn_here]


def test_the_blend_at_either_end_is_that_notes_code(models, notes):
    wavenet, _, _ = models
    codes = stacked_z(encode_notes(wavenet, list(notes)))
    np.testing.assert_allclose(teaching.blend_code(wavenet, teaching.blend_grid(*notes, 0.0)), codes[0])
    np.testing.assert_allclose(teaching.blend_code(wavenet, teaching.blend_grid(*notes, 1.0)), codes[1])
    halfway = teaching.blend_code(wavenet, teaching.blend_grid(*notes, 0.5))
    np.testing.assert_allclose(halfway, codes.mean(axis=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError):
        teaching.blend_grid(*notes, 1.5)


def test_the_cost_table_reports_each_decoders_estimate(models):
    _, spectral, ddsp = models
    table = teaching.cost_table([("Spectral baseline", spectral), ("DDSP", ddsp)])
    rows = [line.split("|")[1:-1] for line in table.splitlines()[2:]]
    assert [row[0].strip() for row in rows] == ["Spectral baseline", "DDSP"]
    for (_, loaded), row in zip([(None, spectral), (None, ddsp)], rows):
        seconds = loaded.decoding.estimate_seconds(1, NOTE_LENGTH)
        assert float(row[3].replace(",", "")) == pytest.approx(NOTE_LENGTH / seconds, rel=0.01, abs=1)


def test_the_evaluation_table_is_read_when_present(tmp_path):
    assert "No evaluation" in teaching.evaluation_table(tmp_path)
    (tmp_path / "evaluation.md").write_text("| Audio | Pitch |\n|---|---:|\n| Original | 99.0 |\n\nNotes below.\n")
    assert teaching.evaluation_table(tmp_path) == "| Audio | Pitch |\n|---|---:|\n| Original | 99.0 |"


def test_the_code_step_draws_the_notes_path_over_the_map_from_its_own_z(tmp_path):
    """Step 2's second figure: the walked note's frames placed one by one on the map of its WaveNet."""
    from tests.app_helpers import write_tiny_checkpoints
    from nsynth_core.explorer.explorer import Explorer

    wavenet_path, _, _ = write_tiny_checkpoints(tmp_path)
    app = Explorer(tmp_path)
    wavenet, note = load_model(wavenet_path), next(iter(app.bundled.values()))
    path = app.trajectory(wavenet, note)
    assert path.shape == (len(encode_notes(wavenet, [note])[0].z), 2)
