"""The walk-through's numbers: what the page plays and draws must be what the models really do."""

import numpy as np
import pytest
import torch

from tests.app_helpers import write_tiny_checkpoints
from nsynth_core.explorer.explorer import Explorer
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
    assert "No evaluation" in teaching.evaluation_table(tmp_path, set())
    (tmp_path / "evaluation.md").write_text("| Audio | Pitch |\n|---|---:|\n| Original | 99.0 |\n\nNotes below.\n")
    assert teaching.evaluation_table(tmp_path, set()) == "| Audio | Pitch |\n|---|---:|\n| Original | 99.0 |"


def test_the_code_step_draws_the_notes_path_over_the_map_from_its_own_z(tmp_path):
    """Step 2's second figure: the walked note's frames placed one by one on the map of its WaveNet."""
    wavenet_path, _, _ = write_tiny_checkpoints(tmp_path)
    app = Explorer(tmp_path)
    wavenet, note = load_model(wavenet_path), next(iter(app.bundled.values()))
    path = app.trajectory(wavenet, note)
    assert path.shape == (len(encode_notes(wavenet, [note])[0].z), 2)


def test_step_5_lists_only_the_checkpoints_the_pickers_offer(tmp_path):
    """The shipped evaluation also measured DDSP checkpoints that are not shipped: the walk-through lists the
    rows of the checkpoints on offer, and every row that names none."""
    from webapp.how_it_works_tab import HowItWorksTab
    write_tiny_checkpoints(tmp_path)
    rows = ["| Audio | Pitch |", "|---|---:|", "| Original audio | 99.0 |", "| WaveNet reconstruction, temperature 1 | 49.0 |",
            "| DDSP reconstruction (tiny-ddsp, the WaveNet's Z) | 100.0 |",
            "| DDSP reconstruction (ddsp-28828, the WaveNet's Z) | 100.0 |"]
    (tmp_path / "evaluation.md").write_text("\n".join(rows) + "\n\nNotes below.\n")
    tab = HowItWorksTab(Explorer(tmp_path))
    offered = tab.offered_checkpoints()
    assert {name for found in tab.explorer.checkpoints().values() for name, _ in found} == offered
    assert "tiny-ddsp" in offered and "ddsp-28828" not in offered
    listed = tab.show_decoders(*(path for found in tab.explorer.checkpoints().values() for _, path in found[:1]))
    assert "\n".join(rows[:5]) in listed and "ddsp-28828" not in listed


def test_the_default_time_step_of_a_short_pluck_is_where_it_sounds(tmp_path):
    """On a 0.3 s pluck a step half a second in is silence, where the decoder is sure and there is nothing to see:
    the walk-through sets its step, for each note it follows, inside the note's loudest stretch."""
    from webapp.how_it_works_tab import HowItWorksTab
    t = np.arange(NOTE_LENGTH) / 16000
    pluck = (0.5 * np.sin(2 * np.pi * 330 * t) * np.exp(-t / 0.05) * (t < 0.3)).astype(np.float32)
    note = Note(id="pluck", name="pluck", audio=pluck, pitch=64)
    write_tiny_checkpoints(tmp_path)
    *_, step = HowItWorksTab(Explorer(tmp_path)).show_sound("pluck", {"pluck": note})
    assert step == teaching.sounding_step(pluck)
    assert np.abs(pluck[step - 256: step + 256]).max() > 0.5 * np.abs(pluck).max()


def test_the_walk_throughs_titles_fit_a_phone_and_never_overlap(models, notes):
    """At a phone's width each title line fits the figure, the subplot titles keep clear of each other and of the
    title, which sits below plotly's toolbar; and all text is at least 14 px, legible on a projector."""
    from tests.figure_boxes import (PHONE_PLOT_WIDTH, annotation_boxes, font_size, overlapping, text_width, title_lines,
                              title_span)
    from webapp.figures import TOOLBAR_HEIGHT
    wavenet, _, _ = models
    figures = [teaching.sound_figure(notes[0].audio), teaching.code_figure(wavenet, notes[0]),
               teaching.receptive_field_figure(wavenet, notes[0], 3000),
               teaching.distribution_figure(wavenet, notes[0], 3000, 1.0, 0),
               teaching.mixing_figure(wavenet, teaching.blend_grid(*notes, 0.5), notes[0].audio, "DDSP")]
    for figure in figures:
        top, bottom = title_span(figure)
        assert round(top) >= TOOLBAR_HEIGHT and figure.layout.title.yanchor == "top"
        for text, size in title_lines(figure):
            assert size >= 14 and text_width(text, size) <= PHONE_PLOT_WIDTH - 10, text
        boxes = annotation_boxes(figure)
        assert not overlapping(boxes), overlapping(boxes)
        for text, left, top, right, _ in boxes:
            assert 0 <= left and right <= PHONE_PLOT_WIDTH and top >= bottom, text
        assert font_size(None, figure.layout) >= 14
