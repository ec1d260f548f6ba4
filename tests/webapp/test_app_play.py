"""The Play tab through the app's API: a map point heard, and the grid exported as a SoundFont."""

import base64
import json
import re
import time

import numpy as np
import pytest
import soundfile as sf

from nsynth_core.audio.core import PLAYBACK_PEAK, SAMPLE_RATE
from nsynth_core.audio.metrics import cents_error, median_f0
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.loaded_models import encode_notes, load_model, stacked_z
from nsynth_core.explorer.multigrid import ONS_PITCHES
from nsynth_core.explorer.notes import ASSETS_DIR, bundled_notes
from nsynth_core.exports import example_grid

CORNERS = ["bass_electronic_fluidr3_gm033-036-100", "brass_acoustic_fluidr3_gm056-055-100",
           "flute_acoustic_fluidr3_gm073-067-100", "bass_electronic_fluidr3_gm033-036-100"]


def test_a_map_point_is_played_as_a_blend_of_three_notes(client):
    audio_path, blend = client.predict(0.5, -0.5, "DDSP", "60", 0.5, 0.25, api_name="/play_point")
    audio, rate = sf.read(audio_path)
    assert rate == SAMPLE_RATE and len(audio) == SAMPLE_RATE // 2
    assert np.abs(audio).max() == pytest.approx(PLAYBACK_PEAK, abs=1e-4)
    assert blend.startswith("Blend of") and blend.count("%") == 3


def test_a_map_point_plays_its_own_pitch_octaves_away(client):
    _, own = client.predict(0.5, -0.5, "DDSP", "each note's own", 1.0, 0.25, api_name="/play_point")
    own_pitch = int(re.search(r"at MIDI (\d+)\.$", own).group(1))
    audio_path, lower = client.predict(0.5, -0.5, "DDSP", "each note's own", 1.0, 0.25, octaves=-1,
                                       api_name="/play_point")
    assert lower.endswith(f"at MIDI {own_pitch - 12}.")
    audio, rate = sf.read(audio_path)
    assert abs(cents_error(median_f0(audio, rate), own_pitch - 12)) < 50  # heard an octave down


def test_the_grid_downloads_as_a_soundfont_of_every_cell(client):
    tinysoundfont = pytest.importorskip("tinysoundfont")
    path = client.predict(*CORNERS, 2, "distance", "DDSP", 0.5, api_name="/soundfont")
    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    font = synth.sfload(path)
    assert [synth.sfpreset_name(font, 0, p) for p in range(5)] == ["r1c1", "r1c2", "r2c1", "r2c2", None]
    synth.program_select(0, font, 0, 3)
    synth.noteon(0, 60, 100)
    assert np.abs(np.frombuffer(synth.generate(4000), np.float32)).max() > 0.01


def test_the_grid_decoded_for_playing_is_every_cell_at_every_chosen_pitch(client):
    path, index = client.predict(*[None] * 4, 2, [48, 72], "distance", "DDSP", 0.5, api_name="/decode_for_playing")
    samples = np.fromfile(path, "<i2")
    assert (index["rows"], index["cols"], index["pitches"], index["length"]) == (2, 2, [48, 72], SAMPLE_RATE // 2)
    assert len(samples) == 4 * 2 * SAMPLE_RATE // 2 and index["offsets"][3][1] == 7 * SAMPLE_RATE // 2
    assert np.abs(samples).max() / 32767 == pytest.approx(PLAYBACK_PEAK, abs=1e-4)
    assert index["decoder"] == "DDSP" and len(index["corners"]) == 4  # four examples when no corner is chosen
    _, chosen = client.predict(*CORNERS, 2, [60], "distance", "DDSP", 0.5, api_name="/decode_for_playing")
    assert [corner.split(" (")[0] for corner in chosen["corners"]] == CORNERS  # what the page says it plays


def test_the_largest_multigrid_reports_its_progress_while_it_decodes(client):
    """9 x 9 cells at Open NSynth Super's 16 pitches: the page's progress bar is fed chunk by chunk."""
    job = client.submit(*[None] * 4, 9, list(ONS_PITCHES), "distance", "DDSP", 0.5, api_name="/decode_for_playing")
    seen = set()
    while not job.done():
        for update in job.status().progress_data or []:
            seen.add((update.desc, update.index, update.length))
        time.sleep(0.02)
    _, index = job.result()
    assert len(index["offsets"]) == 81 and len(index["pitches"]) == 16
    assert seen and all(desc == "Decoding every cell at 16 pitches" and 0 < done <= total == 1296
                        for desc, done, total in seen)


def test_playing_needs_a_pitch_and_all_or_none_of_the_corners(client):
    with pytest.raises(Exception, match="at least one pitch"):
        client.predict(*[None] * 4, 2, [], "distance", "DDSP", 0.5, api_name="/decode_for_playing")
    with pytest.raises(Exception, match="all four corner notes"):
        client.predict(CORNERS[0], None, None, None, 2, [60], "distance", "DDSP", 0.5,
                       api_name="/decode_for_playing")


def test_a_refusal_is_one_line_of_the_log_without_a_traceback(client, app_log):
    logged = len(app_log.read_text())
    with pytest.raises(Exception, match="all four corner notes"):
        client.predict(CORNERS[0], None, None, None, 2, [60], "distance", "DDSP", 0.5,
                       api_name="/decode_for_playing")
    added = app_log.read_text()[logged:]
    assert "Traceback" not in added
    assert [line for line in added.splitlines() if "all four corner notes" in line] == [
        "Refused (decode_for_playing): Choose all four corner notes in the Grid tab first (or none, for four "
        "examples)."]


def test_the_pages_example_corners_are_the_shipped_wavenets_z():
    """The Play tab plays assets/synth/example_corners.json before the server does anything: after retraining
    the WaveNet, write it again with `python -m nsynth_core.exports.example_grid`."""
    shipped = json.loads((ASSETS_DIR / example_grid.CORNERS_Z_FILE).read_text())
    encoder = load_model(example_grid.SHIPPED_CHECKPOINTS / example_grid.ENCODER)
    notes = {note.id: note for note in bundled_notes()}
    fresh = example_grid.corners_for_synth([notes[note_id] for note_id in example_grid.CORNERS], encoder)
    assert {key: value for key, value in shipped.items() if key != "z"} == {
        key: value for key, value in fresh.items() if key != "z"}
    assert shipped["encoder"] == encoder.fingerprint and shipped["frames"] * shipped["channels"] * 4 == 8000
    as_floats = [np.frombuffer(base64.b64decode(corners["z"]), "<f4") for corners in (shipped, fresh)]
    np.testing.assert_allclose(*as_floats, atol=1e-4)


def test_the_pages_map_notes_are_the_shipped_wavenets_map_and_z():
    """A click between notes is heard from assets/synth/map_notes.json before the server answers: after retraining
    the WaveNet, write it again with `python -m nsynth_core.exports.example_grid`."""
    shipped = json.loads((ASSETS_DIR / example_grid.MAP_NOTES_FILE).read_text())
    encoder = load_model(example_grid.SHIPPED_CHECKPOINTS / example_grid.ENCODER)
    explorer = Explorer()
    names = [str(name) for name in explorer.map_for(encoder, placing=False).names]
    assert shipped["encoder"] == encoder.fingerprint
    assert [note["id"] for note in shipped["notes"]] == names  # the map's order
    assert [note["pitch"] for note in shipped["notes"]] == [explorer.bundled[name].pitch for name in names]
    z = np.frombuffer(base64.b64decode(shipped["z"]), "<f2").reshape(len(names), shipped["frames"],
                                                                      shipped["channels"])
    checked = [0, len(names) - 1]  # two notes encoded afresh: the whole map takes a minute
    fresh = stacked_z(encode_notes(encoder, [explorer.bundled[names[i]] for i in checked]))
    np.testing.assert_allclose(z[checked].astype(np.float32), fresh, rtol=2 ** -10, atol=1e-3)
