"""Hostile and unlucky input: odd uploads, broken checkpoints, requests for files the app must not serve.

Uploads go through what the upload handler calls (notes.note_from_file) and, for a representative subset,
through gradio_client against a launched app, checking after each bad request that a good upload still works.
"""

import asyncio
import errno
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import replace
from operator import attrgetter
from types import SimpleNamespace

import gradio as gr
import httpx
import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError


from nsynth_core.explorer import loaded_models, notes
from nsynth_core.exports import files as exports
from nsynth_core.engine import fastgen
from nsynth_core.audio.core import NOTE_LENGTH, NOTE_PEAK, PLAYBACK_PEAK, SAMPLE_RATE, AudioError, for_playback
from nsynth_core.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.loaded_models import load_model
from nsynth_core.explorer.notes import ExplorerError, note_from_file
from nsynth_core.explorer.interpolation import GRID_SIZES
from nsynth_core.models.wavenet import WaveNetAutoencoder, WaveNetConfig
from tests.archive_bombs import write_deflate_bomb
from webapp import texts
from webapp.shared import OWN_PITCH
from tests.app_helpers import (REPO, add_broken_checkpoints, built_page, running_app, write_nan_weights,
                         write_tiny_checkpoints)

MAX_UPLOAD_FILE_BYTES = 20 * 1024 * 1024  # the page's limit on each file (webapp/shared.py)
CLICK_SECONDS = 0.05
TONE_HZ, TONE_MIDI = 220.0, 57


def tone(seconds, rate=SAMPLE_RATE, amplitude=0.5):
    return amplitude * np.sin(2 * np.pi * TONE_HZ * np.arange(round(seconds * rate)) / rate)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Each odd upload under the name a visitor would give it."""
    directory = tmp_path_factory.mktemp("uploads")
    sf.write(directory / "good.wav", tone(1.0), SAMPLE_RATE)
    good = (directory / "good.wav").read_bytes()
    (directory / "not_audio.wav").write_text("Dear visitor, this is a letter, not a sound.")
    (directory / "empty.wav").write_bytes(b"")
    (directory / "truncated_header.wav").write_bytes(good[:30])
    (directory / "header_only.wav").write_bytes(good[:44])
    sf.write(directory / "silence.wav", np.zeros(SAMPLE_RATE), SAMPLE_RATE)
    click = np.zeros(round(CLICK_SECONDS * SAMPLE_RATE))
    click[:16] = 0.8
    sf.write(directory / "click.wav", click, SAMPLE_RATE)
    sf.write(directory / "ten_minutes.wav", tone(600.0, rate=8000), 8000)  # 9.6 MB: under the upload limit
    sf.write(directory / "surround_96k.wav", np.repeat(tone(0.5, rate=96000)[:, None], 6, axis=1), 96000,
             subtype="FLOAT")
    broken = tone(1.0)
    broken[[100, 200]] = np.nan, np.inf
    sf.write(directory / "nan_inf.wav", broken, SAMPLE_RATE, subtype="FLOAT")
    sf.write(directory / "huge.wav", tone(1.0, amplitude=1e30).astype(np.float32), SAMPLE_RATE, subtype="FLOAT")
    sf.write(directory / "real.mp3", tone(1.0), SAMPLE_RATE, format="MP3")
    shutil.copy(directory / "real.mp3", directory / "mp3_named.wav")
    shutil.copy(directory / "good.wav", directory / "wav_named.mp3")
    with open(directory / "too_big.wav", "wb") as sparse:  # takes no disk space: only its size matters
        sparse.truncate(MAX_UPLOAD_FILE_BYTES + 1)
    return directory


REJECTED = {
    "not_audio.wav": r"Could not decode 'not_audio.wav' \(Format not recognised\)\. Supported files include WAV",
    "empty.wav": r"'empty.wav' is empty \(0 bytes\)",
    "truncated_header.wav": r"Could not decode 'truncated_header.wav'",
    "header_only.wav": r"There are no audio samples in 'header_only.wav'",
    "silence.wav": r"'silence' is silent \(no sample reaches 0.0001, -80 dBFS\): there is nothing to encode",
    "nan_inf.wav": r"Found NaN or infinite samples in 'nan_inf.wav'; the file is probably corrupt",
}
ACCEPTED_TONES = ["ten_minutes.wav", "surround_96k.wav", "huge.wav", "mp3_named.wav", "wav_named.mp3"]


@pytest.mark.parametrize("name", REJECTED)
def test_unusable_uploads_are_refused_with_a_reason(files, name):
    with pytest.raises(ValueError, match=REJECTED[name]):
        note_from_file(files / name)


@pytest.mark.parametrize("name", ACCEPTED_TONES)
def test_odd_but_real_audio_becomes_a_normal_note(files, name):
    note = note_from_file(files / name)
    assert note.audio.shape == (NOTE_LENGTH,) and note.audio.dtype == np.float32
    assert np.isfinite(note.audio).all() and np.abs(note.audio).max() == pytest.approx(NOTE_PEAK)
    assert note.pitch == TONE_MIDI


def test_a_long_file_gives_its_first_seconds(files):
    note = note_from_file(files / "ten_minutes.wav")
    # The tone runs to the end: cut, never padded.
    assert np.abs(note.audio[-SAMPLE_RATE // 10:]).max() > 0.5 * NOTE_PEAK


def test_a_click_is_kept_and_padded_with_silence(files):
    # Accepted: NSynth notes themselves end in silence and drum hits are this short; refusing would lose them.
    note = note_from_file(files / "click.wav")
    click_end = round(CLICK_SECONDS * SAMPLE_RATE)
    assert np.abs(note.audio[:16]).max() == pytest.approx(NOTE_PEAK)
    assert not note.audio[click_end:].any()


# --- floods -------------------------------------------------------------------------------------------------

def tab_serving(page, api_name):
    """The tab of the page whose handler answers `api_name`."""
    return next(event.fn.__self__ for event in page.fns.values() if event.api_name == api_name)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The page app.py builds, in this process over tiny checkpoints, as its explorer and the tabs whose handlers
    are called (and fields read) directly."""
    with built_page(tmp_path_factory) as (shared, built):
        yield SimpleNamespace(explorer=shared, explore=tab_serving(built, "add_uploads"),
                              grid=tab_serving(built, "grid"), play=tab_serving(built, "play_point"),
                              how=tab_serving(built, "show_sound"))


@pytest.fixture
def reads(monkeypatch):
    """Counts the files an upload reads."""
    calls = []
    for name in ("note_from_file", "load_audio"):
        original = getattr(notes, name)
        monkeypatch.setattr(notes, name, lambda *args, original=original, **kwargs: (
            calls.append(args[0]), original(*args, **kwargs))[1])
    return calls


def add_uploads(page, paths, session=None, uploaded=0):
    """The page's upload handler as one visitor calls it: (their notes, the summary shown, the bytes they have
    uploaded now)."""
    session, summary, *_, uploaded = page.explore.add_uploads(
        [str(path) for path in paths], uploaded, session or {}, "family", False, [], None,
        request=gr.Request(session_hash="visitor"), progress=lambda *args, **kwargs: None)
    return session, summary, uploaded


def test_a_flood_of_files_is_refused_before_any_is_read_and_the_next_upload_works(page, files, tmp_path, reads):
    flood = []
    for i in range(200):
        shutil.copy(files / "click.wav", tmp_path / f"click{i}.wav")
        flood.append(tmp_path / f"click{i}.wav")
    with pytest.raises(gr.Error, match="Upload at most 16 files at a time; this upload has 200"):
        add_uploads(page, flood)
    assert reads == []
    session, summary, _ = add_uploads(page, [files / "good.wav"])
    assert "good" in summary and reads


def test_an_upload_over_the_byte_budget_is_refused_before_any_is_read(page, files, tmp_path, reads):
    heavy = []
    for i in range(4):  # each under the per-file limit, together over the request's budget
        with open(tmp_path / f"heavy{i}.wav", "wb") as sparse:
            sparse.truncate(MAX_UPLOAD_FILE_BYTES - 1)
        heavy.append(tmp_path / f"heavy{i}.wav")
    with pytest.raises(gr.Error, match="Upload at most 60 MB at a time; these files hold 80 MB"):
        add_uploads(page, heavy)
    assert reads == []


def test_an_upload_over_the_visitors_room_is_refused_before_any_is_read(page, files, reads):
    note = note_from_file(files / "good.wav")
    reads.clear()
    nearly_full = {f"n{i}": note for i in range(notes.MAX_SESSION_NOTES - 2)}
    with pytest.raises(gr.Error, match="you have 46, so 2 more can be added, not 3"):
        add_uploads(page, [files / "good.wav", files / "click.wav", files / "real.mp3"], nearly_full)
    assert reads == []
    session, _, _ = add_uploads(page, [files / "click.wav"], nearly_full)
    assert len(session) == notes.MAX_SESSION_NOTES - 1


def test_uploads_past_the_visitors_byte_budget_are_refused_before_any_is_read(page, files, reads, monkeypatch):
    monkeypatch.setenv(notes.SESSION_UPLOAD_ENV, "12")
    session, _, uploaded = add_uploads(page, [files / "ten_minutes.wav"])
    assert uploaded == (files / "ten_minutes.wav").stat().st_size
    reads.clear()
    with pytest.raises(gr.Error, match=r"Each visitor can upload 12 MB in all; you have uploaded 9\.2 MB, so "
                                            r"2\.8 MB more can be added, not 9\.2 MB"):
        add_uploads(page, [files / "ten_minutes.wav"], session, uploaded)
    assert reads == []
    _, summary, now = add_uploads(page, [files / "good.wav"], session, uploaded)  # what is left can be used
    assert "good" in summary and now == uploaded + (files / "good.wav").stat().st_size


# --- grids --------------------------------------------------------------------------------------------------

LINE_NOTES = ["bass_electronic_fluidr3_gm033-036-100", "brass_acoustic_fluidr3_gm056-055-100"]


def run_grid(page, *corners, size=2, decoder="WaveNet", session=None, wavenet=True, seconds=0.1):
    directory = page.explorer.checkpoints_dir
    paths = [str(directory / "tiny-wavenet") if wavenet else None, str(directory / "tiny-spectral"),
             str(directory / "tiny-ddsp")]
    shape = "line (A to B)" if len(corners) == 2 else "grid (4 notes)"
    corners = [*corners, None, None][:4]
    return asyncio.run(page.grid.run_grid(*corners, shape, size, "bilinear", decoder, 0.25, seconds, session or {},
                                          *paths, progress=lambda *args, **kwargs: None))


def test_a_spectral_grid_without_a_wavenet_is_heard_not_placed(page, monkeypatch):
    monkeypatch.setattr(load_model(page.explorer.checkpoints_dir / "tiny-spectral").decoding, "griffin_lim_iters", 2)
    *players, _, archive, cells, made_by = run_grid(page, *LINE_NOTES, decoder="Spectral baseline",
                                                    wavenet=False)
    assert cells == [] and "spectral" in made_by.lower()
    assert sum(bool(player.get("visible")) for player in players) == 2
    with zipfile.ZipFile(archive) as opened:
        assert {"step1.wav", "step2.wav", "grid.json"} <= set(opened.namelist())


@pytest.mark.parametrize("size", ["NaN", 3.5, float("inf"), 1, 10, None])
def test_a_bad_grid_size_gets_a_clear_message(page, size):
    with pytest.raises(gr.Error, match=f"The grid size must be a whole number from 2 to 9, not {size!r}"):
        run_grid(page, *LINE_NOTES, size=size)


def tiny_checkpoint_paths(page):
    return [str(page.explorer.checkpoints_dir / name) for name in ("tiny-wavenet", "tiny-spectral", "tiny-ddsp")]


@pytest.mark.parametrize("x", [10 ** 400, 1e308])
def test_a_map_point_off_any_map_is_refused_naming_the_field_and_its_range(page, x):
    assert page.play.point_x.preprocess(x) == x  # a number, if a huge one: the range is the map's to check
    with pytest.raises(gr.Error, match=r"Map x must be a number from -1,000,000 to 1,000,000, not "):
        asyncio.run(page.play.play_point(x, 0.0, "DDSP", OWN_PITCH, 0.25, 1.0, *tiny_checkpoint_paths(page)))


@pytest.mark.parametrize("handler, pitches", [("export_soundfont", []), ("decode_for_playing", [["60"]])])
def test_a_fractional_grid_size_is_refused_by_every_grid(page, handler, pitches):
    with pytest.raises(gr.Error, match=r"The grid size must be a whole number from 2 to 9, not 2\.5\."):
        asyncio.run(getattr(page.play, handler)(None, None, None, None, 2.5, *pitches, "bilinear", "DDSP", 0.25, {},
                                                *tiny_checkpoint_paths(page), progress=lambda *args, **kwargs: None))


@pytest.mark.parametrize("field, given", [("grid.size", "NaN"), ("grid.size", [3]), ("grid.seconds", "1e999"),
                                          ("play.point_x", "nan"), ("how.draw_seed", None)])
def test_a_field_given_a_non_number_through_the_api_gets_the_apps_message(page, field, given):
    component = attrgetter(field)(page)
    with pytest.raises(gr.Error, match=re.escape(f"{component.label} must be a number, not {given!r}.")):
        component.preprocess(given)


def test_a_number_sent_as_text_through_the_api_is_read_as_that_number(page):
    assert page.grid.size.preprocess("3.0") == 3.0 and page.play.point_x.preprocess(" -1.5 ") == -1.5
    assert type(page.grid.size.preprocess(3)) is int  # what the page sends is passed on as it was
    assert page.explore.note_pitch.preprocess(None) is None  # a field that starts empty may be left empty
    largest = max(GRID_SIZES)
    with pytest.raises(gr.Error, match=f"greater than maximum value {largest}"):  # Gradio's range check runs
        page.grid.size.preprocess(str(largest + 2))


def test_a_whole_float_grid_size_is_taken(page, monkeypatch):
    monkeypatch.setattr(load_model(page.explorer.checkpoints_dir / "tiny-spectral").decoding, "griffin_lim_iters", 2)
    *players, _, _, _, _ = run_grid(page, *LINE_NOTES, size=3.0, decoder="Spectral baseline")
    assert sum(bool(player.get("visible")) for player in players) == 3


def test_a_9_by_9_grid_says_what_it_will_take_before_it_fills_81_players_in_9_rows(page):
    paths = [str(page.explorer.checkpoints_dir / name) for name in ("tiny-wavenet", "tiny-spectral", "tiny-ddsp")]
    for decoder in ("WaveNet", "DDSP"):
        said = page.grid.estimate("grid (4 notes)", 9, decoder, 4.0, *paths)
        assert f"Decoding 81 cells of 4 s with the {decoder} decoder takes **" in said
    *players, _, _, cells, _ = run_grid(page, *LINE_NOTES, *LINE_NOTES, size=9, decoder="DDSP")
    shown = [index for index, player in enumerate(players) if player.get("visible")]
    assert shown == list(range(81)) and len(players) == 81  # row by row, 9 to a row
    assert players[80]["label"].startswith("r9c9: ") and len(cells) == 81


@pytest.mark.parametrize("name, channels", [("short", 1), ("channels_1024", 1024)])
def test_a_note_without_pitch_is_kept_with_a_warning_and_named_when_a_grid_needs_its_pitch(page, tmp_path, name,
                                                                                           channels):
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, (SAMPLE_RATE // 10, channels))  # 0.1 s
    sf.write(tmp_path / f"{name}.wav", noise, SAMPLE_RATE)
    with pytest.warns(UserWarning, match=f"No pitch was found in '{name}'"):
        session, summary, _ = add_uploads(page, [tmp_path / f"{name}.wav"])
    (note,) = session
    with pytest.raises(gr.Error, match=f"needs each note's pitch, but none was found in '{name}'"):
        run_grid(page, note, *LINE_NOTES[:1], decoder="DDSP", session=session)


def test_a_wavenet_estimate_during_the_engines_first_build_says_why_at_once(page, monkeypatch, tmp_path):
    engine_sized = tmp_path / "engine-wavenet"  # channels the C++ engine runs (tiny-wavenet's it does not)
    save_checkpoint(WaveNetAutoencoder(replace(WaveNetConfig.preset("cpu-small"), encoder_layers=2,
                                               decoder_layers=2, hop_length=32)), engine_sized)
    release = threading.Event()
    monkeypatch.setattr(fastgen, "compiled_library", lambda: release.wait(60))  # a build that takes its time
    monkeypatch.setattr(fastgen, "_finished_build", lambda directory: None)  # a first start
    monkeypatch.setattr(fastgen, "_engine", fastgen.EngineBuild())
    monkeypatch.setattr(fastgen, "BUILD_WAIT", 20)
    monkeypatch.setattr(fastgen, "_warned", set())
    fastgen.start_build()
    directory = page.explorer.checkpoints_dir
    paths = [str(engine_sized), str(directory / "tiny-spectral"), str(directory / "tiny-ddsp")]
    started = time.monotonic()
    said = page.grid.estimate("grid (4 notes)", 2, "WaveNet", 1.0, *paths)
    waited = time.monotonic() - started
    release.set()
    assert "A WaveNet decode waits for the C++ engine's first build on this machine (up to 20 s)" in said
    assert waited < 5
    assert "Decoding 4 cells" in page.grid.estimate("grid (4 notes)", 2, "DDSP", 1.0, *paths)  # the others are not held


# --- files handed out ----------------------------------------------------------------------------------------

def test_outputs_get_their_own_folder_and_old_ones_are_removed(tmp_path):
    old = exports.output_path(tmp_path, "nsynth_grid.zip")
    old.write_bytes(b"zip")
    an_hour_ago = time.time() - exports.OUTPUT_MAX_AGE - 1
    os.utime(old.parent, (an_hour_ago, an_hour_ago))
    recent = exports.output_path(tmp_path, "nsynth_grid.zip")  # making a new one clears out the old
    recent.write_bytes(b"zip")
    assert recent.parent.parent == tmp_path and recent.parent != old.parent
    assert not old.parent.exists() and recent.exists()
    assert exports.remove_old_outputs(tmp_path, max_age=0) == 1 and not recent.parent.exists()


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_gives_a_clear_message_and_leaves_no_partial_zip(page, monkeypatch):
    monkeypatch.setattr(load_model(page.explorer.checkpoints_dir / "tiny-spectral").decoding, "griffin_lim_iters", 2)
    before = set(page.grid.outputs_dir.iterdir()) if page.grid.outputs_dir.exists() else set()
    monkeypatch.setattr(zipfile.ZipFile, "writestr", disk_full)
    with pytest.raises(gr.Error, match="The server's disk is full"):
        run_grid(page, *LINE_NOTES, decoder="Spectral baseline")
    assert set(page.grid.outputs_dir.iterdir()) == before
    monkeypatch.setattr(exports.tempfile, "mkdtemp", disk_full)
    with pytest.raises(exports.OutputError, match="The server's disk is full"):
        exports.output_path(page.grid.outputs_dir, "nsynth_grid.zip")


# --- saved notes --------------------------------------------------------------------------------------------

def test_saved_notes_come_back_as_they_were(page, files):
    session, _, _ = add_uploads(page, [files / "good.wav", files / "click.wav"])
    saved = page.explore.save_notes(session)
    restored, summary, *_ = page.explore.restore_notes(saved, {}, "family", False, [], None)
    assert list(restored) == list(session) and "good" in summary
    for note_id, note in session.items():
        again = restored[note_id]
        assert (again.name, again.pitch, again.source) == (note.name, note.pitch, note.source)
        np.testing.assert_array_equal(again.audio, note.audio)
    with pytest.raises(gr.Error, match="no notes of your own"):
        page.explore.save_notes({})


def test_a_bad_archive_is_refused_in_one_log_line_and_the_notes_kept(page, files, tmp_path, capsys):
    write_deflate_bomb(tmp_path / "bomb.npz")
    (tmp_path / "letter.npz").write_text("not an archive")
    session, _, _ = add_uploads(page, [files / "good.wav"])
    capsys.readouterr()
    for path, reason in [(tmp_path / "bomb.npz", "The audio array in 'bomb.npz' would unpack to 1023.9 MB"),
                         (tmp_path / "letter.npz", "'letter.npz' is not saved notes")]:
        with pytest.raises(gr.Error, match=re.escape(reason)):
            page.explore.restore_notes(str(path), session, "family", False, [], None)
        logged = capsys.readouterr().err.splitlines()
        assert len(logged) == 1 and logged[0].startswith(f"Refused (restore_notes): {reason}"), logged
    assert len(session) == 1


# --- checkpoints ---------------------------------------------------------------------------------------------

def test_broken_checkpoints_are_skipped_and_reported(tmp_path):
    write_tiny_checkpoints(tmp_path)
    add_broken_checkpoints(tmp_path)
    checked = Explorer(tmp_path)
    assert {kind: [name for name, _ in found] for kind, found in checked.checkpoints().items()} == {
        "wavenet": ["tiny-wavenet"], "spectral": ["tiny-spectral"], "ddsp": ["tiny-ddsp"]}
    status = texts.checkpoint_status(checked)
    assert "**Skipped checkpoint `corrupt`:**" in status and "cannot be read" in status
    assert "**Skipped checkpoint `mismatched`:**" in status and "does not match its config" in status
    assert "**Skipped checkpoint `half_written`:**" in status and "not valid JSON" in status
    assert "**Skipped checkpoint `nan_weights`:**" in status and "NaN or infinite weights" in status
    assert "tiny-" not in status and "No trained" not in status


def test_nan_weights_are_refused_at_load_naming_the_tensor(tmp_path):
    write_tiny_checkpoints(tmp_path)
    with pytest.raises(CheckpointError, match=r"NaN or infinite weights in 1 tensors \(e.g. decoder.logits.weight\)"):
        load_checkpoint(write_nan_weights(tmp_path))


def test_non_finite_decoder_output_never_reaches_a_player(tmp_path, monkeypatch):
    wavenet = load_model(write_tiny_checkpoints(tmp_path)[0])
    broken = np.zeros((1, 64), np.float32)
    broken[0, 10] = np.inf
    broken[0, 20] = np.nan
    monkeypatch.setattr(wavenet.decoding, "decode", lambda *args: broken)
    z = np.full((1, 1, wavenet.model.config.latent_channels), 0.123, np.float32)
    with pytest.raises(ExplorerError, match="tiny-wavenet decoded NaN or infinite samples for the cell"):
        loaded_models.decode_z(wavenet, z, names=["the cell"], length=64)
    with pytest.raises(ExplorerError):  # not cached: asking again decodes again and fails again
        loaded_models.decode_z(wavenet, z, names=["the cell"], length=64)
    with pytest.raises(AudioError, match="not played"):  # the last guard before any player or wav
        for_playback(broken[0])
    noise = np.random.default_rng(0).uniform(-1e6, 1e6, 64)
    assert np.abs(for_playback(noise)).max() == pytest.approx(PLAYBACK_PEAK)  # loud output is played at one level


# --- a launched app ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(url, client, checkpoints folder, outputs folder) of `python app.py` with good and broken checkpoints."""
    checkpoints = tmp_path_factory.mktemp("checkpoints")
    outputs = tmp_path_factory.mktemp("outputs")
    write_tiny_checkpoints(checkpoints)
    add_broken_checkpoints(checkpoints)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(exports.OUTPUTS_ENV, str(outputs))
        patch.setenv(notes.SESSION_UPLOAD_ENV, str(SERVED_BUDGET_MB))
        with running_app(checkpoints, checkpoints / "app.log") as url:
            yield url, Client(url, verbose=False), checkpoints, outputs


SERVED_BUDGET_MB = 25  # each visitor's upload budget in the launched app: two long files, not three


def upload(client, *paths):
    summary, *_ = client.predict([handle_file(str(path)) for path in paths], "family", False,
                                 api_name="/add_uploads")
    return summary


@pytest.mark.parametrize("name", ["not_audio.wav", "empty.wav", "truncated_header.wav", "silence.wav",
                                  "nan_inf.wav"])
def test_bad_uploads_fail_with_their_reason_and_the_next_one_works(served, files, name):
    _, client, _, _ = served
    with pytest.raises(AppError, match=REJECTED[name]):
        upload(client, files / name)
    assert "good" in upload(client, files / "good.wav")


def test_mislabelled_and_long_files_are_read(served, files):
    _, client, _, _ = served
    assert "mp3_named" in upload(client, files / "mp3_named.wav")
    assert "ten_minutes" in upload(client, files / "ten_minutes.wav")


def test_files_over_the_size_limit_are_refused(served, files):
    url, client, _, _ = served
    with pytest.raises(ValueError, match="exceeds the maximum file size of 20971520 bytes"):
        upload(client, files / "too_big.wav")
    with open(files / "too_big.wav", "rb") as big:  # a client that skips the check meets the server's
        answer = httpx.post(f"{url}gradio_api/upload", files=[("files", ("too_big.wav", big))], timeout=60)
    assert answer.status_code == 413
    assert "good" in upload(client, files / "good.wav")


def test_a_visitor_past_their_byte_budget_is_told_so_and_the_app_keeps_serving(served, files):
    url, _, _, _ = served
    visitor = Client(url, verbose=False)  # a visitor of their own: nothing uploaded yet
    for _ in range(2):
        assert "ten_minutes" in upload(visitor, files / "ten_minutes.wav")
    with pytest.raises(AppError, match=rf"Each visitor can upload {SERVED_BUDGET_MB} MB in all; you have uploaded "
                                       r"18\.3 MB, so 6\.7 MB more can be added, not 9\.2 MB"):
        upload(visitor, files / "ten_minutes.wav")
    assert "good" in upload(visitor, files / "good.wav")  # the rest of the budget is theirs
    assert "good" in upload(Client(url, verbose=False), files / "ten_minutes.wav", files / "good.wav")


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_only_uploads_and_outputs_are_served(served, files):
    url, _, checkpoints, _ = served
    with open(files / "good.wav", "rb") as good:
        stored = httpx.post(f"{url}gradio_api/upload", files=[("files", ("good.wav", good))], timeout=60).json()[0]
    assert fetch(f"{url}gradio_api/file={stored}") == (200, (files / "good.wav").read_bytes())
    upload_dir = os.path.dirname(os.path.dirname(stored))
    for path in (REPO / "app.py", "app.py", checkpoints / "tiny-wavenet.safetensors",
                 f"{upload_dir}/../..{REPO}/app.py", f"{upload_dir}/..%2F..{REPO}/app.py", "/etc/passwd"):
        status, body = fetch(f"{url}gradio_api/file={path}")
        assert status == 403 and b"File not allowed" in body, path


def test_a_grid_zip_is_written_to_the_outputs_folder(served):
    _, client, _, outputs = served
    corners = ["bass_electronic_fluidr3_gm033-036-100", "brass_acoustic_fluidr3_gm056-055-100"]
    _, _, archive, _ = client.predict(*corners, None, None, "line (A to B)", 2, "bilinear", "WaveNet", 1.0, 0.1,
                                      api_name="/grid")
    written = list(outputs.glob("*/nsynth_grid.zip"))
    assert len(written) == 1 and written[0].read_bytes() == open(archive, "rb").read()
    with zipfile.ZipFile(archive) as opened:
        assert {"step1.wav", "step2.wav", "grid.json"} <= set(opened.namelist())


def test_the_page_names_the_skipped_checkpoints_and_serves_the_rest(served):
    _, client, checkpoints, _ = served
    texts = [c["props"].get("value") for c in client.config["components"] if c.get("type") == "markdown"]
    status = next(text for text in texts if text and "Skipped checkpoint" in text)
    for name in ("corrupt", "mismatched", "half_written", "nan_weights"):
        assert f"`{name}`" in status
    pickers = [c["props"] for c in client.config["components"] if c["props"].get("label") == "WaveNet checkpoint"]
    assert [name for name, _ in pickers[0]["choices"]] == ["tiny-wavenet"]
    assert "Skipped checkpoint corrupt" in (checkpoints / "app.log").read_text()
