import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from nsynth_core.data.nsynth import (QUALITIES, DatasetError, NoteCropDataset, parse_example, read_examples_json,
                                 read_json_wav, read_tfrecord, read_tfrecord_at, tfrecord_offsets)
from tests.fixtures.make_nsynth_fixtures import NOTES, encode_example

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nsynth"
JSON_WAV = FIXTURES / "jsonwav"
TFRECORD = FIXTURES / "notes.tfrecord"


def test_json_wav_notes_carry_the_official_labels():
    notes = list(read_json_wav(JSON_WAV))
    assert [n.note_str for n in notes] == [row[0] for row in NOTES]
    keyboard = notes[0]
    assert (keyboard.pitch, keyboard.velocity, keyboard.instrument) == (60, 100, 4)
    assert (keyboard.family_str, keyboard.source_str, keyboard.instrument_str) == \
        ("keyboard", "acoustic", "keyboard_acoustic_004")
    assert keyboard.qualities[QUALITIES.index("fast_decay")] == 1 and sum(keyboard.qualities) == 1
    assert keyboard.audio.dtype == np.float32 and keyboard.audio.shape == (4000,)
    # The wav holds a tone at the labelled pitch: its spectrum peaks at the fundamental.
    spectrum = np.abs(np.fft.rfft(keyboard.audio))
    assert abs(np.argmax(spectrum) * 16000 / 4000 - 261.6) < 4


def test_metadata_can_be_listed_without_reading_audio(tmp_path):
    shutil.copytree(JSON_WAV, tmp_path / "notes")
    shutil.rmtree(tmp_path / "notes" / "audio")
    notes = list(read_json_wav(tmp_path / "notes", with_audio=False))
    assert [n.pitch for n in notes] == [60, 40, 72] and all(n.audio is None for n in notes)
    with pytest.raises(DatasetError, match="missing"):
        list(read_json_wav(tmp_path / "notes"))


def test_tfrecord_and_json_wav_readers_agree():
    from_json = list(read_json_wav(JSON_WAV))
    from_tfrecord = list(read_tfrecord(TFRECORD))
    assert len(from_tfrecord) == 3
    for a, b in zip(from_json, from_tfrecord):
        assert (a.note_str, a.pitch, a.velocity, a.instrument, a.family, a.source, a.qualities) == \
               (b.note_str, b.pitch, b.velocity, b.instrument, b.family, b.source, b.qualities)
        np.testing.assert_array_equal(a.audio, b.audio)
    offsets = tfrecord_offsets(TFRECORD)
    assert read_tfrecord_at(TFRECORD, offsets[2]).note_str == from_json[2].note_str


def test_unpacked_lists_and_negative_int64_parse():
    record = encode_example({"note_str": [b"x"], "pitch": [-3, 70], "audio": [0.5, -0.25]}, packed=False)
    features = parse_example(record)
    assert features["pitch"] == [-3, 70]
    np.testing.assert_array_equal(features["audio"], np.array([0.5, -0.25], dtype=np.float32))


@pytest.mark.parametrize("position, message", [(-10, "data of the record at byte 32765 fails its CRC"),
                                               (3, "length of the record at byte 0 fails its CRC")])
def test_corrupt_tfrecord_is_reported_with_its_place(tmp_path, position, message):
    data = bytearray(TFRECORD.read_bytes())
    data[position] ^= 0x40
    path = tmp_path / "corrupt.tfrecord"
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=message):
        list(read_tfrecord(path))


def test_truncated_tfrecord_is_reported(tmp_path):
    path = tmp_path / "truncated.tfrecord"
    path.write_bytes(TFRECORD.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="truncated"):
        tfrecord_offsets(path)
    with pytest.raises(DatasetError, match="truncated"):
        list(read_tfrecord(path))


def test_folder_without_examples_json_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="no examples.json"):
        read_examples_json(tmp_path)


@pytest.mark.parametrize("source", [JSON_WAV, TFRECORD])
def test_crops_have_the_crop_length_and_the_note_pitch(source):
    dataset = NoteCropDataset(source, crop_length=1024, generator=torch.Generator().manual_seed(0))
    assert len(dataset) == 3
    crop, pitch = dataset[1]
    assert crop.dtype == torch.float32 and crop.shape == (1024,) and pitch == 40
    note = list(read_json_wav(JSON_WAV))[1].audio
    # The crop is a contiguous piece of the note.
    starts = [s for s in range(4000 - 1024 + 1) if np.array_equal(note[s: s + 1024], crop.numpy())]
    assert len(starts) == 1
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=3)))
    assert batch[0].shape == (3, 1024) and batch[1].tolist() == [60, 40, 72]


def test_crop_offsets_are_random_and_respect_within_seconds():
    dataset = NoteCropDataset(JSON_WAV, crop_length=800, within_seconds=0.1,
                              generator=torch.Generator().manual_seed(1))
    note = list(read_json_wav(JSON_WAV))[0].audio
    starts = set()
    for _ in range(30):
        crop = dataset[0][0].numpy()
        starts.add(next(s for s in range(4000 - 800 + 1) if np.array_equal(note[s: s + 800], crop)))
    assert len(starts) > 10 and max(starts) <= 1600 - 800


def test_corrupt_and_silent_notes_are_skipped_with_a_warning(tmp_path):
    root = tmp_path / "notes"
    shutil.copytree(JSON_WAV, root)
    names = list(json.loads((root / "examples.json").read_text()))
    (root / "audio" / f"{names[0]}.wav").write_bytes(b"not a wav file at all")
    sf.write(root / "audio" / f"{names[1]}.wav", np.zeros(4000), 16000, subtype="PCM_16")
    dataset = NoteCropDataset(root, crop_length=512)
    with pytest.warns(UserWarning, match="Skipping a note") as caught:
        crop, pitch = dataset[0]
    assert pitch == 72 and crop.abs().max() > 0  # the third note, the only usable one
    assert any(names[0] in str(w.message) for w in caught) and any("silent" in str(w.message) for w in caught)
    (root / "audio" / f"{names[2]}.wav").unlink()
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="No note"):
        dataset[0]


def test_corrupt_record_is_skipped_in_a_tfrecord_dataset(tmp_path):
    data = bytearray(TFRECORD.read_bytes())
    data[100] ^= 0x01  # inside the first record's audio
    path = tmp_path / "notes.tfrecord"
    path.write_bytes(bytes(data))
    dataset = NoteCropDataset(path, crop_length=512)
    with pytest.warns(UserWarning, match="fails its CRC"):
        assert dataset[0][1] == 40


def test_crops_longer_than_the_allowed_region_are_refused():
    with pytest.raises(DatasetError, match="cannot lie within"):
        NoteCropDataset(JSON_WAV, crop_length=6144, within_seconds=0.2)
