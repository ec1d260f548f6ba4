import re
from types import SimpleNamespace

import librosa
import numpy as np
import pytest
import soundfile as sf

from nsynth_core.data.nsynth import FAMILIES, QUALITIES, SOURCES, read_json_wav
from train.instruments import GM_INSTRUMENTS
from train.render_soundfonts import SPLITS, envelope_qualities, main, render_dataset, split_instruments

FONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"  # small (6 MB) General-MIDI font from Debian's timgm6mb-soundfont
OFFICIAL_FIELDS = {"note", "note_str", "instrument", "instrument_str", "pitch", "velocity", "sample_rate",
                   "qualities", "qualities_str", "instrument_family", "instrument_family_str",
                   "instrument_source", "instrument_source_str"}
PROGRAMS = (0, 1, 4, 16)  # three keyboards (one per split) and a drawbar organ, which sounds an octave low


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("rendered")
    summary = render_dataset(out, [FONT], velocities=[100], pitch_step=24, split_seed=3, programs=PROGRAMS)
    return out, summary


def test_rendered_notes_follow_the_nsynth_schema(rendered):
    out, summary = rendered
    for split in SPLITS:
        for note in read_json_wav(out / split):
            assert re.fullmatch(r"[a-z_]+_(acoustic|electronic|synthetic)_\d{3}-\d{3}-\d{3}", note.note_str)
            assert note.note_str == f"{note.instrument_str}-{note.pitch:03d}-{note.velocity:03d}"
            assert FAMILIES[note.family] == note.family_str and SOURCES[note.source] == note.source_str
            assert len(note.qualities) == len(QUALITIES) and 21 <= note.pitch <= 108
            assert note.audio.shape == (64000,) and np.abs(note.audio).max() > 1e-3
            info = sf.info(out / split / "audio" / f"{note.note_str}.wav")
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    examples = __import__("json").loads((out / "nsynth-train" / "examples.json").read_text())
    assert all(OFFICIAL_FIELDS <= set(example) for example in examples.values())
    assert sum(summary["notes"].values()) == len({e for split in SPLITS for e in _examples(out, split)})


def _examples(out, split):
    return __import__("json").loads((out / split / "examples.json").read_text())


def test_pitch_labels_match_the_audio(rendered):
    out, _ = rendered
    for split in SPLITS:
        for note in read_json_wav(out / split):
            f0, voiced, _ = librosa.pyin(note.audio[1600:17600], sr=16000, fmin=librosa.midi_to_hz(note.pitch - 13),
                                         fmax=min(librosa.midi_to_hz(note.pitch + 13), 7500), frame_length=4096,
                                         hop_length=512)
            measured = np.median(librosa.hz_to_midi(f0[voiced]))
            assert abs(measured - note.pitch) < 0.5, note.note_str


def test_an_organ_sounding_an_octave_low_gets_its_label_shifted(rendered):
    out, _ = rendered
    organs = [e for split in SPLITS for e in _examples(out, split).values() if e["program"] == 16]
    assert organs and all(e["pitch"] == e["midi_key"] - 12 for e in organs)
    keyboards = [e for split in SPLITS for e in _examples(out, split).values() if e["program"] != 16]
    assert keyboards and all(e["pitch"] == e["midi_key"] for e in keyboards)


def test_splits_do_not_share_instruments(rendered):
    out, summary = rendered
    instruments = [{e["instrument"] for e in _examples(out, split).values()} for split in SPLITS]
    assert all(instruments)  # three keyboards: one in each split
    assert not (instruments[0] & instruments[1] or instruments[0] & instruments[2] or instruments[1] & instruments[2])
    assert summary["instruments_kept"] == len(PROGRAMS)


def test_split_is_deterministic_stratified_and_roughly_80_10_10():
    instruments = [SimpleNamespace(id=i, family=FAMILIES[i % 5]) for i in range(100)]
    splits = split_instruments(instruments, seed=7)
    assert splits == split_instruments(instruments, seed=7) and splits != split_instruments(instruments, seed=8)
    for family in FAMILIES[:5]:
        members = [splits[i.id] for i in instruments if i.family == family]
        assert members.count("nsynth-test") == members.count("nsynth-valid") == 2


def test_envelope_qualities():
    t = np.arange(64000) / 16000
    tone = np.sin(2 * np.pi * 220 * t)
    fast = tone * np.exp(-t * 6)
    organ = tone * (t < 3)
    ringing = tone * np.where(t < 3, 1.0, np.exp(-(t - 3)))
    flag = {name: i for i, name in enumerate(QUALITIES)}
    assert envelope_qualities(fast)[flag["fast_decay"]] == 1 and envelope_qualities(fast)[flag["long_release"]] == 0
    assert sum(envelope_qualities(organ)) == 0
    assert envelope_qualities(ringing)[flag["long_release"]] == 1 and sum(envelope_qualities(ringing)) == 1


def test_instrument_table_is_consistent():
    for program, instrument in GM_INSTRUMENTS.items():
        assert instrument.program == program and instrument.family in FAMILIES and instrument.source in SOURCES
        assert 21 <= instrument.lowest_pitch < instrument.highest_pitch <= 108
    assert GM_INSTRUMENTS[52].family == GM_INSTRUMENTS[53].family == "vocal"
    assert GM_INSTRUMENTS[58].highest_pitch < 70  # a tuba is never asked for high notes
    assert not set(range(120, 128)) & set(GM_INSTRUMENTS)  # sound effects are left out


def test_bad_arguments_give_a_clear_message(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path), FONT, "--programs", "125"])
    assert "not melodic programs with an NSynth family" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path), str(tmp_path / "missing.sf2")])
    assert "does not exist" in capsys.readouterr().err


def test_training_only_fonts_add_to_train_and_leave_valid_and_test_as_they_were(rendered, tmp_path):
    out, summary = rendered
    render_dataset(tmp_path, [FONT], velocities=[100], pitch_step=24, split_seed=3, programs=PROGRAMS,
                   train_only_paths=[FONT])
    for split in ("nsynth-valid", "nsynth-test"):
        assert _examples(tmp_path, split) == _examples(out, split)
    train = _examples(tmp_path, "nsynth-train")
    added = {e["instrument"] for e in train.values()} - {e["instrument"] for e in _examples(out, "nsynth-train").values()}
    assert added == {128 + program for program in PROGRAMS}  # the second font's every program, in train alone
