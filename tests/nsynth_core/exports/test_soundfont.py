"""SoundFont export: the file parsed back by the spec, and played by two independent synthesisers."""

import shutil
import struct
import subprocess

import librosa
import numpy as np
import pytest
import soundfile as sf

from nsynth_core.audio.core import SAMPLE_RATE, playback_pcm16
from nsynth_core.explorer.interpolation import cell_labels, grid_weights
from nsynth_core.audio.metrics import cents_error, median_f0
from nsynth_core.explorer.multigrid import Multigrid
from nsynth_core.exports.soundfont import (GUARD_SAMPLES, KEY_RANGE, OVERRIDING_ROOT_KEY, SAMPLE_ID, SAMPLE_MODES,
                                   SoundFontError, key_ranges, write_soundfont)

PITCHES = (48, 60, 72)
LENGTH = 2 * SAMPLE_RATE
RECORD_SIZES = {b"phdr": 38, b"pbag": 4, b"pmod": 10, b"pgen": 4, b"inst": 22, b"ibag": 4, b"imod": 10,
                b"igen": 4, b"shdr": 46}


def sine_multigrid() -> Multigrid:
    """2 x 2 cells of sines at the decoded pitches; cell c carries a quieter partial at (c + 2) x f0, so each
    preset's samples differ."""
    t = np.arange(LENGTH) / SAMPLE_RATE
    audio = np.zeros((4, len(PITCHES), LENGTH), np.float32)
    for cell in range(4):
        for index, pitch in enumerate(PITCHES):
            f0 = librosa.midi_to_hz(pitch)
            audio[cell, index] = 0.17 * (np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * (cell + 2) * f0 * t))
    return Multigrid(size=2, pitches=PITCHES, labels=cell_labels(2), weights=grid_weights(2).reshape(4, 4),
                     audio=audio)


@pytest.fixture(scope="module")
def soundfont(tmp_path_factory):
    return write_soundfont(tmp_path_factory.mktemp("sf2") / "grid.sf2", sine_multigrid(), title="test grid")


def chunks(data: bytes) -> dict[bytes, bytes]:
    """{tag: data} of a run of RIFF chunks (LISTs keyed by their kind)."""
    found, offset = {}, 0
    while offset < len(data):
        tag, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        body = data[offset + 8:offset + 8 + size]
        found[body[:4] if tag == b"LIST" else tag] = body[4:] if tag == b"LIST" else body
        offset += 8 + size + size % 2
    return found


def records(table: bytes, size: int) -> list[bytes]:
    assert len(table) % size == 0
    return [table[i:i + size] for i in range(0, len(table), size)]


def name(record: bytes) -> str:
    return record[:20].split(b"\0")[0].decode()


def test_the_file_is_the_riff_layout_of_the_spec(soundfont):
    data = soundfont.read_bytes()
    assert data[:4] == b"RIFF" and struct.unpack("<I", data[4:8])[0] == len(data) - 8 and data[8:12] == b"sfbk"
    top = chunks(data[12:])
    assert list(top) == [b"INFO", b"sdta", b"pdta"]
    info = chunks(top[b"INFO"])
    assert struct.unpack("<HH", info[b"ifil"]) == (2, 1)
    assert info[b"isng"].rstrip(b"\0") == b"EMU8000" and info[b"INAM"].rstrip(b"\0") == b"test grid"
    assert all(len(value) % 2 == 0 and value.endswith(b"\0") for tag, value in info.items() if tag != b"ifil")
    pdta = chunks(top[b"pdta"])
    assert list(pdta) == list(RECORD_SIZES)
    tables = {tag: records(pdta[tag], size) for tag, size in RECORD_SIZES.items()}
    assert [name(r) for r in tables[b"phdr"]] == ["r1c1", "r1c2", "r2c1", "r2c2", "EOP"]
    assert name(tables[b"inst"][-1]) == "EOI" and name(tables[b"shdr"][-1]) == "EOS"
    assert tables[b"pmod"] == [bytes(10)] and tables[b"imod"] == [bytes(10)]
    assert tables[b"pgen"][-1] == bytes(4) and tables[b"igen"][-1] == bytes(4)


def test_each_preset_splits_the_keyboard_over_its_cells_samples(soundfont):
    grid = sine_multigrid()
    top = chunks(soundfont.read_bytes()[12:])
    smpl = np.frombuffer(chunks(top[b"sdta"])[b"smpl"], "<i2")
    pdta = chunks(top[b"pdta"])
    phdr, pbag, pgen, inst, ibag, igen, shdr = (records(pdta[tag], RECORD_SIZES[tag]) for tag in
                                               (b"phdr", b"pbag", b"pgen", b"inst", b"ibag", b"igen", b"shdr"))
    for cell in range(4):
        preset, bank, bag = struct.unpack("<HHH", phdr[cell][20:26])
        assert (preset, bank) == (cell, 0)
        generator = struct.unpack("<H", pbag[bag][:2])[0]
        operator, instrument = struct.unpack("<HH", pgen[generator])
        assert operator == 41 and name(inst[instrument]) == grid.labels[cell]
        first_zone, next_zone = (struct.unpack("<H", inst[i][20:])[0] for i in (instrument, instrument + 1))
        covered = []
        for zone in range(first_zone, next_zone):
            start, stop = (struct.unpack("<H", ibag[i][:2])[0] for i in (zone, zone + 1))
            generators = [struct.unpack("<HH", record) for record in igen[start:stop]]
            assert generators[0][0] == KEY_RANGE and generators[-1][0] == SAMPLE_ID  # the spec's order
            values = dict(generators)
            low, high = values[KEY_RANGE] & 0xFF, values[KEY_RANGE] >> 8
            covered += range(low, high + 1)
            assert values[SAMPLE_MODES] == 0
            sample = shdr[values[SAMPLE_ID]]
            begin, end, loop_start, loop_end, rate, original, _, _, kind = struct.unpack("<IIIIIBbHH", sample[20:])
            pitch = PITCHES[zone - first_zone]
            assert values[OVERRIDING_ROOT_KEY] == pitch == original and low <= pitch <= high
            assert (rate, kind, end - begin) == (SAMPLE_RATE, 1, LENGTH) and begin < loop_start < loop_end < end
            np.testing.assert_array_equal(smpl[begin:end], playback_pcm16(grid.audio[cell, zone - first_zone]))
            assert not smpl[end:end + GUARD_SAMPLES].any()
        assert covered == list(range(128))  # every key, once


def test_key_ranges_meet_halfway_between_pitches():
    assert key_ranges((24, 28, 32)) == [(0, 26), (27, 30), (31, 127)]
    assert key_ranges((60,)) == [(0, 127)]


def test_notes_too_short_or_pitches_off_the_keyboard_are_refused(tmp_path):
    grid = sine_multigrid()
    with pytest.raises(SoundFontError):
        write_soundfont(tmp_path / "short.sf2", Multigrid(2, PITCHES, grid.labels, grid.weights, grid.audio[..., :8]))
    with pytest.raises(SoundFontError):
        write_soundfont(tmp_path / "high.sf2", Multigrid(2, (60, 130), grid.labels, grid.weights, grid.audio[:, :2]))


def midi_file(path, program: int, key: int, seconds: float = 1.5):
    """A one-note standard MIDI file: program change, note on, note off (120 bpm, 480 ticks a beat)."""
    ticks = round(seconds * 960)
    delta = bytes([0x80 | (ticks >> 7), ticks & 0x7F])
    track = (b"\0" + bytes([0xC0, program]) + b"\0" + bytes([0x90, key, 100]) + delta + bytes([0x80, key, 0])
             + b"\0\xff\x2f\x00")
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(track)) + track)
    return path


@pytest.mark.skipif(shutil.which("fluidsynth") is None,
                    reason="Debian's fluidsynth is not installed (scripts/install_test_deps.sh installs it)")
@pytest.mark.parametrize("preset, key", [(0, 60), (3, 66), (1, 67), (2, 40)])  # on, above, below a sample; low end
def test_fluidsynth_plays_each_preset_at_the_key_pressed(soundfont, tmp_path, preset, key):
    rendered = tmp_path / "out.wav"
    subprocess.run(["fluidsynth", "-ni", "-R", "0", "-C", "0", "-F", str(rendered), "-r", str(SAMPLE_RATE),
                    str(soundfont), str(midi_file(tmp_path / "song.mid", preset, key))],
                   check=True, capture_output=True, timeout=120)
    audio, rate = sf.read(rendered, always_2d=True)
    audio = audio.mean(axis=1)
    assert rate == SAMPLE_RATE and np.abs(audio).max() > 0.05
    assert abs(cents_error(median_f0(audio), key)) < 50


def test_tinysoundfont_reads_the_presets_and_plays_them_in_tune(soundfont):
    tinysoundfont = pytest.importorskip("tinysoundfont")
    synth = tinysoundfont.Synth(samplerate=SAMPLE_RATE)
    font = synth.sfload(str(soundfont))
    assert [synth.sfpreset_name(font, 0, p) for p in range(5)] == ["r1c1", "r1c2", "r2c1", "r2c2", None]
    synth.program_select(0, font, 0, 2)
    synth.noteon(0, 55, 100)
    audio = np.frombuffer(synth.generate(int(1.5 * SAMPLE_RATE)), np.float32).reshape(-1, 2).mean(axis=1)
    assert np.abs(audio).max() > 0.05
    assert abs(cents_error(median_f0(audio), 55)) < 50
