import json
import shutil
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

from nsynth_core.explorer import explorer, grids, loaded_models
from nsynth_core.audio.core import NOTE_LENGTH, NOTE_PEAK, PLAYBACK_PEAK, SAMPLE_RATE, AudioError
from nsynth_core.models.checkpoint import CheckpointError
from nsynth_core.explorer.decoding import decoding_for
from nsynth_core.explorer.embedding_map import load_map, note_features, save_map
from nsynth_core.explorer.explorer import Explorer
from nsynth_core.explorer.grids import make_grid
from nsynth_core.explorer.loaded_models import (decode_z, encode_notes, encoder_for, list_checkpoints, load_model,
                                                stacked_z)
from nsynth_core.explorer.lru_cache import LRUCache
from nsynth_core.explorer.notes import (ASSETS_DIR, MAX_SESSION_NOTES, EncodedNote, ExplorerError, Note, add_notes,
                                        bundled_notes, note_from_file, with_pitch)
from nsynth_core.exports.files import export_zip
from webapp.figures import FigureError, map_figure
from tests.app_helpers import write_tiny_checkpoints

SHORT = 1600  # 0.1 s: enough to exercise every path of the decoder


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Per-sample generation is many tiny ops; on a busy 2-core machine two threads only wait on each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    directory = tmp_path_factory.mktemp("checkpoints")
    wavenet, spectral, ddsp = write_tiny_checkpoints(directory)
    return directory, load_model(wavenet), load_model(spectral), load_model(ddsp)


@pytest.fixture(scope="module")
def small_assets(tmp_path_factory):
    """Eight short tones in two families, as assets/ lays them out."""
    directory = tmp_path_factory.mktemp("assets")
    (directory / "notes").mkdir()
    index = []
    for i, pitch in enumerate([48, 50, 52, 55, 72, 74, 76, 79]):
        family = "low" if pitch < 60 else "high"
        t = np.arange(NOTE_LENGTH) / SAMPLE_RATE
        tone = 0.5 * np.sin(2 * np.pi * 440 * 2 ** ((pitch - 69) / 12) * t) * np.exp(-t * (1 + i % 3))
        sf.write(directory / "notes" / f"n{i}.wav", tone, SAMPLE_RATE)
        index.append({"name": f"n{i}", "file": f"notes/n{i}.wav", "family": family, "pitch": pitch, "source": "test"})
    (directory / "notes.json").write_text(json.dumps(index))
    return directory


def test_shipped_map_is_the_shipped_wavenets_encoding_of_the_examples_as_the_app_loads_them():
    shipped = loaded_models.DEFAULT_CHECKPOINTS_DIR / "wavenet"
    wavenet = load_model(shipped)
    stored = load_map(ASSETS_DIR)
    assert stored.checkpoint == wavenet.fingerprint
    examples = bundled_notes()
    assert list(stored.names) == [note.id for note in examples]
    np.testing.assert_allclose(note_features(stacked_z(encode_notes(wavenet, examples))), stored.features, atol=1e-4)
    assert Explorer().precomputed_map(wavenet) is not None  # so the page is served with the map already drawn


def test_bundled_examples_cover_the_families():
    notes = bundled_notes()
    assert len(notes) >= 16
    assert {note.family for note in notes} >= {"bass", "brass", "flute", "keyboard", "string", "vocal"}
    assert all(note.audio.shape == (NOTE_LENGTH,) for note in notes)
    assert all(np.abs(note.audio).max() == pytest.approx(NOTE_PEAK) for note in notes)  # the level models are fed at
    piano = next(note for note in notes if note.id == "keyboard_acoustic_fluidr3_gm000-060-100")
    assert piano.label == "keyboard_acoustic_fluidr3_gm000-060-100 (C4)"  # its name says the family already


def test_uploads_become_named_pitched_notes(write_tone):
    note = note_from_file(write_tone(frequency=220.0, seconds=1.5, sample_rate=44100, channels=2, amplitude=0.99))
    assert note.audio.shape == (NOTE_LENGTH,) and note.source == "upload"
    assert np.abs(note.audio).max() == pytest.approx(NOTE_PEAK, rel=1e-5)  # a loud file is encoded at training level
    assert note.pitch == 57 and note.name.startswith("tone_44100")


def test_bad_uploads_say_what_is_wrong(write_tone, tmp_path):
    with pytest.raises(ExplorerError, match="silent"):
        note_from_file(write_tone(amplitude=0.0))
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all")
    with pytest.raises(AudioError):
        note_from_file(text)


def test_add_notes_keeps_one_copy_and_unique_names(write_tone):
    a = note_from_file(write_tone(frequency=220.0), name="take")
    b = note_from_file(write_tone(frequency=330.0), name="take")
    session = add_notes({}, [a, a, b], taken_names={"bundled"})
    assert len(session) == 2
    assert sorted(note.name for note in session.values()) == ["take", "take (2)"]


def test_a_wrong_pitch_is_corrected_in_the_session_only(write_tone):
    note = note_from_file(write_tone(frequency=261.63), name="bell")
    session = add_notes({}, [note])
    assert session[note.id].pitch == 60
    corrected = with_pitch(session, note.id, 48.0)
    assert corrected[note.id].pitch == 48 and corrected[note.id].label == "bell (unknown, C3)"
    assert session[note.id].pitch == 60  # the session it came from is unchanged
    for wrong in (None, "C4", 60.5, 128, float("nan")):
        with pytest.raises(ExplorerError, match="whole MIDI note number"):
            with_pitch(session, note.id, wrong)
    with pytest.raises(ExplorerError, match="examples keep their dataset's labels"):
        with_pitch(session, "bass_electronic_fluidr3_gm033-036-100", 40)


def test_checkpoints_are_listed_by_kind(checkpoints, tmp_path):
    directory, wavenet, spectral, _ = checkpoints
    (directory / "notes.json").write_text("{}")  # not a checkpoint: skipped
    found = list_checkpoints(directory)
    assert [name for name, _ in found["wavenet"]] == ["tiny-wavenet"]
    assert [name for name, _ in found["spectral"]] == ["tiny-spectral"]
    assert wavenet.kind == "wavenet" and spectral.kind == "spectral"
    assert load_model(found["wavenet"][0][1]) is wavenet  # loaded once
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "absent")


def test_encodings_are_cached(checkpoints, write_tone, monkeypatch):
    _, wavenet, spectral, _ = checkpoints
    note = note_from_file(write_tone(frequency=261.6))
    encoded, = encode_notes(wavenet, [note])
    assert isinstance(encoded, EncodedNote) and encoded.z.shape == (NOTE_LENGTH // 512, 16)
    assert encoded.encoder == wavenet.fingerprint and (encoded.id, encoded.pitch) == (note.id, note.pitch)
    assert encode_notes(spectral, [note])[0].z.shape == (1984,)
    monkeypatch.setattr(wavenet.model, "encode", lambda audio, dtype: pytest.fail("encoded twice"))
    np.testing.assert_array_equal(encode_notes(wavenet, [note])[0].z, encoded.z)


def test_a_note_carries_its_z_through_the_session_and_another_encoder_encodes_it_anew(checkpoints, write_tone,
                                                                                         monkeypatch):
    _, wavenet, spectral, _ = checkpoints
    encoded, = encode_notes(wavenet, [note_from_file(write_tone(frequency=392.0), name="take")])
    monkeypatch.setattr(loaded_models, "_encodings", LRUCache(1))  # the cache forgot it: only the note holds its Z
    monkeypatch.setattr(wavenet.model, "encode", lambda audio, dtype: pytest.fail("encoded again"))
    session = with_pitch(add_notes({}, [encoded], taken_names={"take"}), encoded.id, 50)
    kept = session[encoded.id]
    assert (kept.name, kept.pitch) == ("take (2)", 50) and kept.z is encoded.z
    assert encode_notes(wavenet, [kept])[0] is kept
    by_spectral, = encode_notes(spectral, [kept])
    assert by_spectral.z.shape == (1984,) and by_spectral.encoder == spectral.fingerprint
    assert by_spectral.name == "take (2)"


@pytest.mark.parametrize("kind", ["wavenet", "spectral", "ddsp"])
def test_decode_z_batches_and_caches(checkpoints, monkeypatch, kind):
    _, wavenet, spectral, ddsp = checkpoints
    loaded = {"wavenet": wavenet, "spectral": spectral, "ddsp": ddsp}[kind]
    shape = (3, 1984) if kind == "spectral" else (3, 4, 16)
    z = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    pitches = [48, 60, 72] if loaded.needs_pitch else None
    calls = []
    audio = decode_z(loaded, z, pitches, length=SHORT, progress=lambda done, total: calls.append((done, total)))
    assert audio.shape == (3, SHORT) and np.abs(audio).max(axis=1).min() > 0
    assert calls and calls[-1][0] == calls[-1][1]
    monkeypatch.setattr(loaded.decoding, "decode", lambda *args: pytest.fail("decoded twice"))
    np.testing.assert_array_equal(decode_z(loaded, z[::-1], pitches and pitches[::-1], length=SHORT), audio[::-1])
    with pytest.raises(ExplorerError, match="Length"):
        decode_z(loaded, z, pitches, length=NOTE_LENGTH + 1)


def test_decode_time_estimate_scales_with_the_work(checkpoints):
    # Fresh estimators: the module's models have recorded the decodes of earlier tests.
    wavenet, spectral, ddsp = (decoding_for(loaded.model) for loaded in checkpoints[1:])
    estimate = wavenet.estimate_seconds
    one = estimate(1, SAMPLE_RATE)
    assert one > 0
    assert estimate(1, 2 * SAMPLE_RATE) == pytest.approx(2 * one)
    assert estimate(9, SAMPLE_RATE) >= one
    assert spectral.estimate_seconds(4, SAMPLE_RATE) == pytest.approx(4 * spectral.estimate_seconds(1, SAMPLE_RATE))
    assert ddsp.estimate_seconds(1, 2 * SAMPLE_RATE) == pytest.approx(2 * ddsp.estimate_seconds(1, SAMPLE_RATE))


def test_decode_time_estimates_follow_the_decodes_that_ran_within_30_percent(checkpoints, monkeypatch):
    """The probe of a few hundred samples, on a loaded machine, can see a batch of four decode as fast as one note:
    every grid size was then estimated alike. The decodes that really ran must correct how the cost grows."""
    _, wavenet, _, _ = checkpoints
    decoding = decoding_for(wavenet.model)  # its own estimator state
    monkeypatch.setattr(decoding, "_measure", lambda: (1e-4, 0.0))  # the probe saw batches as free
    rng = np.random.default_rng(0)

    def seconds_taken(cells):  # the real cost: 150 us per sample for one note, 20 us more for each other
        return SAMPLE_RATE * (1.5e-4 + 2e-5 * (cells - 1))

    decoding.record(4, SAMPLE_RATE, seconds_taken(4))  # one decode: the probe's law, rescaled to it
    assert decoding.estimate_seconds(4, SAMPLE_RATE) == pytest.approx(seconds_taken(4))
    for cells in (9, 25, 4, 9, 25):  # 2 x 2, 3 x 3, 5 x 5 grids, each timing 15 % off either way
        decoding.record(cells, SAMPLE_RATE, seconds_taken(cells) * rng.uniform(0.85, 1.15))
    for cells in (4, 9, 25, 36):
        assert decoding.estimate_seconds(cells, SAMPLE_RATE) == pytest.approx(seconds_taken(cells), rel=0.3)
    assert decoding.estimate_seconds(9, 2 * SAMPLE_RATE) == pytest.approx(2 * seconds_taken(9), rel=0.3)


def test_the_ddsp_decoder_reads_the_wavenets_z_and_only_the_one_it_was_trained_on(checkpoints, tmp_path):
    _, wavenet, spectral, ddsp = checkpoints
    assert encoder_for(wavenet, None) is wavenet and encoder_for(spectral, wavenet) is spectral
    assert encoder_for(ddsp, wavenet) is wavenet
    with pytest.raises(ExplorerError, match="choose a WaveNet"):
        encoder_for(ddsp, None)
    other, _, _ = write_tiny_checkpoints(tmp_path, seed=1)
    with pytest.raises(ExplorerError, match="another WaveNet encoder"):
        encoder_for(ddsp, load_model(other))


def test_grids_mix_the_corners(checkpoints, small_assets, tmp_path):
    directory, wavenet, _, _ = checkpoints
    app = Explorer(directory, small_assets)
    corners = list(app.bundled.values())[:4]
    grid = make_grid(corners, 3, "distance")
    assert grid.labels[0] == "r1c1" and len(grid.labels) == 9
    assert grid.mixes()[0] == "A 100 %" and grid.mixes()[4] == "A 25 % + B 25 % + C 25 % + D 25 %"
    audio, z = app.decode_grid(wavenet, wavenet, grid, temperature=1.0, length=SHORT)
    assert audio.shape == (9, SHORT) and z.shape == (9, NOTE_LENGTH // 512, 16)
    corner_z = stacked_z(encode_notes(wavenet, corners))
    np.testing.assert_allclose(z[[0, 2, 6, 8]], corner_z, atol=1e-6)
    np.testing.assert_allclose(z[4], corner_z.mean(0), atol=1e-5)  # the centre weighs all four equally

    archive = export_zip(tmp_path / "grid.zip", grid, audio, z)
    with zipfile.ZipFile(archive) as opened:
        names = set(opened.namelist())
        assert {"r1c1.wav", "r3c3.npy", "grid.json"} <= names and len(names) == 19
        with opened.open("r2c2.wav") as wav:
            sound, rate = sf.read(wav)
        assert rate == SAMPLE_RATE and len(sound) == SHORT
        assert np.abs(sound).max() == pytest.approx(PLAYBACK_PEAK, abs=2 / 32768)  # 16-bit samples
        assert json.loads(opened.read("grid.json"))["corners"] == [note.name for note in corners]

    line = make_grid(corners[:2], 4)
    assert line.labels == ["step1", "step2", "step3", "step4"]
    assert line.mixes() == ["A 100 %", "A 67 % + B 33 %", "B 67 % + A 33 %", "B 100 %"]
    with pytest.raises(ExplorerError, match="2 notes"):
        make_grid(corners[:3], 3)


def test_map_places_user_notes_grids_and_trajectories(checkpoints, small_assets, write_tone):
    directory, wavenet, spectral, _ = checkpoints
    app = Explorer(directory, small_assets)
    assert app.stored_map is None  # no precomputed map here: it is computed for this encoder
    assert Explorer(directory).precomputed_map(wavenet) is None  # the shipped one is another encoder's
    embedding_map = app.map_for(wavenet)
    assert app.map_for(wavenet) is embedding_map
    assert sorted(embedding_map.names) == sorted(app.bundled)
    note = note_from_file(write_tone(frequency=300.0))
    placed = app.place_notes(wavenet, [note])
    grid = make_grid(list(app.bundled.values())[:4], 2)
    cells = app.place_grid(wavenet, grid)
    path = app.trajectory(wavenet, note)
    assert placed.shape == (1, 2) and cells.shape == (4, 2) and path.shape == (NOTE_LENGTH // 512, 2)
    # A placed note keeps its place when drawn again beside a new one; only the new one goes through the reducer.
    asked, transform = [], embedding_map.reducer.transform
    embedding_map.reducer.transform = lambda features: asked.append(len(features)) or transform(features)
    other = note_from_file(write_tone(frequency=500.0))
    both = app.place_notes(wavenet, [note, other])
    assert asked == [1] and np.array_equal(both[0], placed[0])

    figure = map_figure(embedding_map, "family", user_points=[(note, placed[0])],
                        cells=list(zip(grid.labels, cells)), trajectory=(note.name, path))
    names = [trace.name for trace in figure.data]
    assert {"low", "high", "your notes", "grid cells", "its path over time"} <= set(names)
    clickable_ids = {row[0] for trace in figure.data if trace.customdata is not None for row in trace.customdata}
    assert clickable_ids == set(app.bundled) | {note.id}
    mine = next(trace for trace in figure.data if trace.name == "your notes")
    assert mine.text == (note.name,)
    ends = next(trace for trace in figure.data if trace.text == ("start", "end"))
    assert (ends.x[0], ends.y[0]) == tuple(path[0]) and (ends.x[1], ends.y[1]) == tuple(path[-1])
    assert figure.layout.xaxis.title.text == "map x" and "each point is a 4 s note" in figure.layout.title.text
    assert len(map_figure(embedding_map, "pitch").data) == 1
    with pytest.raises(FigureError, match="Colour by one of"):
        map_figure(embedding_map, "colour")
    with pytest.raises(ExplorerError, match="WaveNet"):
        app.map_for(spectral)


def test_a_precomputed_map_draws_at_once_and_places_after_warm_up(checkpoints, small_assets, tmp_path):
    directory, wavenet, _, _ = checkpoints
    shutil.copytree(small_assets, tmp_path, dirs_exist_ok=True)
    save_map(Explorer(directory, small_assets).map_for(wavenet), tmp_path)  # as scripts/build_assets.py does
    app = Explorer(directory, tmp_path)
    drawn = app.map_for(wavenet, placing=False)
    assert drawn.reducer is None  # the examples are drawn without waiting for the reducer
    placing = app.map_for(wavenet)
    np.testing.assert_array_equal(placing.positions, drawn.positions)
    assert app.place_notes(wavenet, list(app.bundled.values())[:2]).shape == (2, 2)


def test_pitch_conditioned_models_get_each_cells_pitch(tmp_path, small_assets):
    from dataclasses import replace

    from nsynth_core.models.checkpoint import save_checkpoint
    from nsynth_core.models.wavenet import WaveNetAutoencoder
    from tests.app_helpers import TINY_WAVENET

    save_checkpoint(WaveNetAutoencoder(replace(TINY_WAVENET, pitch_classes=128)), tmp_path / "pitched")
    loaded = load_model(tmp_path / "pitched")
    corners = list(Explorer(tmp_path, small_assets).bundled.values())[:4]
    grid = make_grid(corners, 3, "bilinear")
    assert grids.grid_pitches(grid) == [48, 48, 50, 48, 48, 50, 52, 52, 55]  # the heaviest corner's pitch
    assert decode_z(loaded, grids.grid_z(loaded, grid), grids.grid_pitches(grid), length=64).shape == (9, 64)
    unpitched = Note(id="x", name="noise", audio=corners[0].audio, pitch=None)
    with pytest.raises(ExplorerError, match="pitch"):
        decode_z(loaded, stacked_z(encode_notes(loaded, [unpitched])), [None], ["noise"], length=64)


def test_a_session_holds_a_bounded_number_of_notes(write_tone):
    note = note_from_file(write_tone())
    many = {f"n{i}": note for i in range(MAX_SESSION_NOTES)}
    with pytest.raises(ExplorerError, match="Up to"):
        add_notes(many, [note_from_file(write_tone(frequency=300.0))])


def test_lru_cache_forgets_the_least_recently_used_first():
    cache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recently used
    cache.put("c", 3)
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3


def test_the_codec_caches_are_bounded(checkpoints, monkeypatch):
    _, wavenet, _, _ = checkpoints
    assert isinstance(loaded_models._encodings, LRUCache) and isinstance(loaded_models._decodings, LRUCache)
    monkeypatch.setattr(loaded_models, "_decodings", LRUCache(2))
    monkeypatch.setattr(loaded_models, "_encodings", LRUCache(2))
    z = np.random.default_rng(1).normal(size=(3, 1, 16)).astype(np.float32)
    for z_i in z:
        decode_z(wavenet, z_i[None], length=64)
    notes = [Note(id=str(i), name=str(i), audio=np.full(NOTE_LENGTH, 0.1 * (i + 1), np.float32))
             for i in range(3)]
    for note in notes:
        encode_notes(wavenet, [note])
    assert len(loaded_models._decodings) == 2 and len(loaded_models._encodings) == 2
    decoded, encoded = [], []

    def count_decodes(z, *args):
        decoded.append(len(z))
        return np.zeros((len(z), 64), np.float32)

    def count_encodes(audio, dtype):
        encoded.append(len(audio))
        return torch.zeros(len(audio), NOTE_LENGTH // 512, 16)

    monkeypatch.setattr(wavenet.decoding, "decode", count_decodes)
    monkeypatch.setattr(wavenet.model, "encode", count_encodes)
    decode_z(wavenet, z[1:], length=64)
    encode_notes(wavenet, notes[1:])
    assert decoded == [] and encoded == []  # the two most recent are kept
    decode_z(wavenet, z[:1], length=64)
    encode_notes(wavenet, notes[:1])
    assert decoded == [1] and encoded == [1]  # the oldest was evicted and is computed again


def test_maps_are_kept_for_a_bounded_number_of_encoders(checkpoints, small_assets, monkeypatch):
    directory, wavenet, _, _ = checkpoints
    app = Explorer(directory, small_assets)
    monkeypatch.setattr(explorer, "compute_map", lambda loaded, notes, progress=None: object())
    for i in range(explorer.MAPS_KEPT + 1):
        app.map_for(loaded_models.LoadedModel(wavenet.model, "wavenet", f"w{i}", f"fingerprint{i}", {}, wavenet.decoding))
    assert len(app._maps) == explorer.MAPS_KEPT and app._maps.get("fingerprint0") is None
