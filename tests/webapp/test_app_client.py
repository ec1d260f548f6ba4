"""The app as a program: `python app.py` driven through its API with gradio_client."""

import contextlib
import io
import json
import re
import zipfile

import numpy as np
import pytest
import soundfile as sf
from gradio_client import handle_file

from nsynth_core.audio.core import PLAYBACK_PEAK
from nsynth_core.exports.files import PLAY_ALL_GAP
from nsynth_core.explorer.interpolation import GRID_SIZES
from tests.app_helpers import REPO

FIRST_NOTES = ["bass_electronic_fluidr3_gm033-036-100", "brass_acoustic_fluidr3_gm056-055-100",
               "flute_acoustic_fluidr3_gm073-067-100"]


def loudness(path):
    audio, rate = sf.read(path)
    return rate, len(audio), float(np.abs(audio).max())


def at_playback_peak(peak):
    return peak == pytest.approx(PLAYBACK_PEAK, abs=1e-4)  # 16-bit samples


def test_upload_map_grid_and_reconstruction(client, write_tone, tmp_path):
    bad = tmp_path / "not_audio.wav"
    bad.write_text("this is text")
    tone = write_tone(frequency=220.0, seconds=1.0)
    summary, figure, picker = client.predict(  # the notes listed, the map, the new note
        [handle_file(str(tone)), handle_file(str(bad))], "family", False, api_name="/add_uploads")
    selected = picker["value"]  # the picker is updated to list the new note and select it
    assert tone.stem in summary and "not_audio" not in summary  # the bad file is skipped with a warning
    assert selected.startswith("upload-")
    assert "your notes" in figure["plot"] and selected in figure["plot"]

    pitch_map = client.predict("pitch", selected, True, api_name="/map")
    assert "MIDI pitch" in pitch_map["plot"] and "over time" in pitch_map["plot"]

    played = client.predict(selected, api_name="/select_note")
    assert at_playback_peak(loudness(played)[2])

    cells, all_cells, archive, made_by = client.predict(
        a=selected, b=FIRST_NOTES[0], c=FIRST_NOTES[1], d=FIRST_NOTES[2], shape="grid (4 notes)", cells_per_side=2,
        mixing="distance", decoder="WaveNet", wavenet_temperature=1.0, seconds=0.1, api_name="/grid")
    assert made_by == "WaveNet (tiny-wavenet)"  # which decoder made the sounds
    assert len(cells) == 4  # the cells row by row, nothing for the page's hidden players
    for cell in cells:
        rate, length, peak = loudness(cell)
        assert rate == 16000 and length == 1600 and at_playback_peak(peak)
    played = np.concatenate([sf.read(cell)[0] for cell in cells])
    assert loudness(all_cells)[1] == 4 * (1600 + PLAY_ALL_GAP * 16000)  # every cell, then a pause
    assert np.abs(sf.read(all_cells)[0][:1600] - played[:1600]).max() < 1e-4  # starting with the first cell
    with zipfile.ZipFile(archive) as opened:
        assert {"r1c1.wav", "r2c2.npy", "grid.json"} <= set(opened.namelist())
    assert "grid cells" in client.predict("family", selected, False, api_name="/map")["plot"]

    original, original_image, *reconstructions = client.predict(selected, 1.0, 0.1, api_name="/reconstruct")
    assert len(reconstructions) == 6  # DDSP, WaveNet and spectral baseline: audio and rainbowgram each
    for path in (original, *reconstructions[::2]):
        _, length, peak = loudness(path)
        assert length == 1600 and at_playback_peak(peak)
    assert all(image for image in (original_image, *reconstructions[1::2]))


def test_a_recording_becomes_a_note(client, write_tone):
    summary, *_ = client.predict(handle_file(str(write_tone(frequency=440.0))), "family", False,
                                 api_name="/add_recording")
    assert "recording 1" in summary


def test_bad_requests_leave_the_app_working(client, tmp_path):
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(16000), 16000)
    with pytest.raises(Exception, match="silent"):
        client.predict([handle_file(str(silent))], "family", False, api_name="/add_uploads")
    with pytest.raises(Exception, match="all four corner notes"):
        client.predict(None, *FIRST_NOTES, "grid (4 notes)", 2, "bilinear", "WaveNet", 1.0, 0.1, api_name="/grid")
    cells, *_ = client.predict(*FIRST_NOTES[:2], None, None, "line (A to B)", 3, "bilinear", "Spectral baseline",
                               1.0, 0.1, api_name="/grid")
    assert len(cells) == 3
    with pytest.raises(Exception, match=re.escape("Cells per side must be a number, not 'NaN'.")):
        client.predict(*FIRST_NOTES[:2], None, None, "line (A to B)", "NaN", "bilinear", "DDSP", 1.0, 0.1,
                       api_name="/grid")
    cells, _, _, made_by = client.predict(*FIRST_NOTES[:2], None, None, "line (A to B)", "3.0", "bilinear",
                                          "DDSP", 1.0, 0.1, api_name="/grid")  # a size sent as text
    assert len(cells) == 3 and made_by.startswith("DDSP")


def test_the_readme_api_example_runs(client, write_tone):
    section = (REPO / "README.md").read_text().split("## The app's API", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    example = example.replace('"http://127.0.0.1:7860/"', repr(client.src)).replace(
        '"my_note.wav"', repr(str(write_tone(frequency=262.0, seconds=1.0))))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(example, {})
    assert "Your notes:" in printed.getvalue() and "DDSP" in printed.getvalue()
    assert "nsynth_grid.zip" in printed.getvalue()


def test_docs_api_names_every_endpoint_and_its_parameters(client):
    listing = client.view_api(return_format="dict", print_info=False)
    sections = dict(re.findall(r"^### `(/[a-z_]+)`\n(.*?)(?=^### |\Z)", (REPO / "docs" / "api.md").read_text(),
                               re.S | re.M))
    assert sorted(sections) == sorted(listing["named_endpoints"])
    for name, endpoint in listing["named_endpoints"].items():
        said = set(re.findall(r"`([a-z_]+)`", sections[name]))
        assert {parameter["parameter_name"] for parameter in endpoint["parameters"]} <= said, name


def test_the_api_lists_what_a_caller_would_call_without_every_note_id(client):
    listing = client.view_api(return_format="dict", print_info=False)
    documented = (REPO / "README.md").read_text().split("## The app's API", 1)[1].split("```", 1)[0]
    assert sorted(listing["named_endpoints"]) == sorted(re.findall(r"`(/[a-z_]+)`", documented))
    assert listing["unnamed_endpoints"] == {}
    labels = [answer["label"] for endpoint in listing["named_endpoints"].values() for answer in endpoint["returns"]]
    assert not [label for label in labels if label.startswith("value_")]  # every answer is named
    parameters = [parameter["parameter_name"] for endpoint in listing["named_endpoints"].values()
                  for parameter in endpoint["parameters"]]
    assert not [name for name in parameters if name.startswith("param_")]  # and every parameter
    assert len(listing["named_endpoints"]["/grid"]["returns"]) == 4  # the grid's sounds, not a player per cell
    for adding in ("/add_uploads", "/add_recording", "/restore_notes", "/correct_pitch"):  # not every note picker
        answers = [answer["label"] for answer in listing["named_endpoints"][adding]["returns"]]
        assert len(answers) == 3 and answers[2] == "Note (or click one on the map)", (adding, answers)
    assert len(json.dumps(listing)) < 70_000  # a file answer alone is 1.5 KB of schema; a player per cell made 180 KB
    assert FIRST_NOTES[0] not in json.dumps(listing)  # the note pickers are filled by the page, not the schema
    with pytest.raises(Exception) as refused:
        client.predict("a-note-of-another-session", api_name="/select_note")
    assert str(refused.value) == "That note is no longer available; choose another one."
