"""NSynth notes: labels, the json/wav and TFRecord readers, and random training crops.

NSynth comes in two layouts, both read here without TensorFlow:
- json/wav: `<root>/examples.json`, a dict keyed by note_str, and `<root>/audio/<note_str>.wav` (16 kHz mono).
- TFRecord: one serialized tf.train.Example per record, with the audio as a float list.
Notes are returned at the length they are stored at (64 000 samples in NSynth; shorter ones are accepted).
"""

import json
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import crc32c
import numpy as np
import soundfile as sf
import torch

from nsynth_core.data import protobuf
from safetensors import safe_open

from nsynth_core.audio.core import NOTE_PEAK, SAMPLE_RATE, SILENCE_PEAK, normalize_loudness

FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal")
SOURCES = ("acoustic", "electronic", "synthetic")
QUALITIES = ("bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic", "nonlinear_env",
             "percussive", "reverb", "tempo-synced")


class DatasetError(ValueError):
    """A dataset file that cannot be read as NSynth; the message says which file and why."""


@dataclass
class NSynthNote:
    note_str: str
    audio: np.ndarray | None  # float32 in [-1, 1]; None when read without audio
    pitch: int
    velocity: int
    instrument: int
    instrument_str: str
    family: int
    family_str: str
    source: int
    source_str: str
    qualities: list  # 10 flags, in the order of QUALITIES


# ---------------------------------------------------------------- json/wav


def read_examples_json(root):
    """The metadata dict of `<root>/examples.json`, keyed by note_str."""
    path = Path(root) / "examples.json"
    if not path.is_file():
        raise DatasetError(f"'{root}' is not an NSynth json/wav folder: it has no examples.json.")
    try:
        with open(path) as file:
            examples = json.load(file)
    except json.JSONDecodeError as error:
        raise DatasetError(f"'{path}' is not valid JSON ({error}).") from None
    if not isinstance(examples, dict):
        raise DatasetError(f"'{path}' should hold a dict keyed by note_str, not a {type(examples).__name__}.")
    return examples


def read_json_wav(root, with_audio=True):
    """Yield the NSynthNotes of a json/wav folder, reading each wav only when its note is reached."""
    root = Path(root)
    for note_str, example in read_examples_json(root).items():
        audio = read_wav(root / "audio" / f"{note_str}.wav") if with_audio else None
        yield _note_from_fields(note_str, example, audio)


def read_wav(path):
    """A 16 kHz mono wav as float32."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"Audio file '{path}' is missing.")
    try:
        audio, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except sf.SoundFileError as error:
        raise DatasetError(f"Could not read '{path}' as a wav file ({error}).") from None
    if sample_rate != SAMPLE_RATE or audio.shape[1] != 1:
        raise DatasetError(f"'{path}' is {sample_rate} Hz with {audio.shape[1]} channel(s); "
                           f"NSynth notes are {SAMPLE_RATE} Hz mono.")
    return audio[:, 0]


def _note_from_fields(note_str, fields, audio):
    """An NSynthNote from json fields or TFRecord features (the *_str labels are optional in both)."""
    try:
        family = int(fields["instrument_family"])
        source = int(fields["instrument_source"])
        return NSynthNote(
            note_str=note_str, audio=audio,
            pitch=int(fields["pitch"]), velocity=int(fields["velocity"]),
            instrument=int(fields["instrument"]),
            instrument_str=fields.get("instrument_str", note_str.rsplit("-", 2)[0]),
            family=family, family_str=fields.get("instrument_family_str", FAMILIES[family]),
            source=source, source_str=fields.get("instrument_source_str", SOURCES[source]),
            qualities=[int(q) for q in fields.get("qualities", [0] * len(QUALITIES))],
        )
    except KeyError as error:
        raise DatasetError(f"Note '{note_str}' lacks the field {error}.") from None
    except (IndexError, TypeError, ValueError):
        raise DatasetError(f"Note '{note_str}' has a malformed label: {dict(fields)}.") from None


# ---------------------------------------------------------------- TFRecord

_HEADER = struct.Struct("<QI")  # record length, masked crc32c of the length
_FOOTER = struct.Struct("<I")  # masked crc32c of the data


def _masked_crc(data):
    """TFRecord's masked CRC-32C (rotated and offset so CRCs of CRCs stay well distributed)."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tfrecord(path, with_audio=True):
    """Yield the NSynthNotes of a TFRecord file, one record at a time."""
    with open(path, "rb") as file:
        while (record := _read_record(file, path)) is not None:
            yield parse_note_example(record, path, with_audio)


def tfrecord_offsets(path):
    """Byte offsets of every record in a TFRecord file, found by reading only the record headers."""
    offsets = []
    with open(path, "rb") as file:
        size = file.seek(0, 2)
        offset = 0
        while offset < size:
            file.seek(offset)
            length = _read_length(file.read(_HEADER.size), path, offset)
            offsets.append(offset)
            offset += _HEADER.size + length + _FOOTER.size
        if offset != size:
            raise DatasetError(f"'{path}' is truncated: its last record ends past the end of the file.")
    return offsets


def read_tfrecord_at(path, offset, with_audio=True):
    """The NSynthNote of the record starting at `offset` (one of tfrecord_offsets)."""
    with open(path, "rb") as file:
        file.seek(offset)
        record = _read_record(file, path)
    if record is None:
        raise DatasetError(f"'{path}' has no record at byte {offset}.")
    return parse_note_example(record, path, with_audio)


def _read_length(header, path, offset):
    if len(header) < _HEADER.size:
        raise DatasetError(f"'{path}' is truncated inside the header of the record at byte {offset}.")
    length, length_crc = _HEADER.unpack(header)
    if _masked_crc(header[:8]) != length_crc:
        raise DatasetError(f"'{path}' is corrupt: the length of the record at byte {offset} fails its CRC "
                           "check (is it a TFRecord file?).")
    return length


def _read_record(file, path):
    """The data of the record at the file's position, or None at the end of the file."""
    offset = file.tell()
    header = file.read(_HEADER.size)
    if not header:
        return None
    length = _read_length(header, path, offset)
    data = file.read(length)
    footer = file.read(_FOOTER.size)
    if len(data) < length or len(footer) < _FOOTER.size:
        raise DatasetError(f"'{path}' is truncated inside the record at byte {offset}.")
    if _masked_crc(data) != _FOOTER.unpack(footer)[0]:
        raise DatasetError(f"'{path}' is corrupt: the data of the record at byte {offset} fails its CRC check.")
    return data


def parse_note_example(record, path="<bytes>", with_audio=True):
    """An NSynthNote from a serialized tf.train.Example holding NSynth's features."""
    try:
        features = parse_example(record)
    except (IndexError, ValueError, struct.error):
        raise DatasetError(f"A record of '{path}' is not a valid tf.train.Example.") from None
    fields = {}
    for name, values in features.items():
        if name == "qualities":
            fields[name] = list(values)
        elif name != "audio" and len(values) > 0:
            value = values[0]
            fields[name] = value.decode("utf-8") if isinstance(value, bytes) else value
    note_str = fields.get("note_str")
    if note_str is None:
        raise DatasetError(f"A record of '{path}' has no note_str feature.")
    audio = None
    if with_audio:
        if "audio" not in features:
            raise DatasetError(f"Note '{note_str}' in '{path}' has no audio feature.")
        audio = np.asarray(features["audio"], dtype=np.float32)
    return _note_from_fields(note_str, fields, audio)


# A tf.train.Example is: Example{1: Features}, Features{1: repeated map entry {1: key, 2: Feature}},
# Feature{oneof 1: BytesList, 2: FloatList, 3: Int64List}, each list {1: repeated value}, numbers packed or not.


def parse_example(data):
    """{feature name: list of bytes | np.float32 array | list of int} from a serialized tf.train.Example."""
    features = {}
    for field, _, example_value in protobuf.fields(data):
        if field != 1:
            continue
        for entry_field, _, entry in protobuf.fields(example_value):
            if entry_field != 1:
                continue
            name, feature = b"", b""
            for key_field, _, value in protobuf.fields(entry):
                if key_field == 1:
                    name = value
                elif key_field == 2:
                    feature = value
            features[name.decode("utf-8")] = _parse_feature(feature)
    return features


def _parse_feature(data):
    """A Feature's values: a list of bytes, a float32 array or a list of ints."""
    for kind, _, value_list in protobuf.fields(data):  # a Feature holds one list, of one of three kinds
        values = [(wire_type, value) for field, wire_type, value in protobuf.fields(value_list) if field == 1]
        if kind == 1:
            return [value for _, value in values]
        if kind == 2:  # packed little-endian float32 (wire type 2), or one fixed32 per value (wire type 5)
            return np.concatenate([np.frombuffer(value, dtype="<f4") for _, value in values]
                                  or [np.zeros(0, dtype="<f4")])
        if kind == 3:  # packed varints (wire type 2), or one varint per value (wire type 0)
            return [_signed(number) for wire_type, value in values
                    for number in (_varints(value) if wire_type == 2 else [value])]
    return []


def _varints(data):
    position, values = 0, []
    while position < len(data):
        value, position = protobuf.read_varint(data, position)
        values.append(value)
    return values


def _signed(value):
    """int64 varints store negative numbers as 64-bit two's complement."""
    return value - (1 << 64) if value >= 1 << 63 else value


# ---------------------------------------------------------------- training crops


class NoteCropDataset(torch.utils.data.Dataset):
    """Random crops of NSynth notes: item i is (float32 tensor [crop_length], MIDI pitch) from note i.

    `source` is a json/wav folder or a TFRecord file. Only the index (note names or record offsets) is held in
    memory; each item reads its note from disk. A note that is corrupt, silent or shorter than the crop is
    skipped with a warning and the next usable note is returned instead. Crop offsets come from `generator`
    when given (reproducible, for a single process), otherwise from torch's global RNG, which DataLoader seeds
    differently in every worker. With `within_seconds`, crops lie in the first that many seconds of the note
    (NSynth holds each key 3 s; the last second is release, often near silence).
    """

    def __init__(self, source, crop_length=6144, within_seconds=None, generator=None):
        self.source = Path(source)
        self.crop_length = crop_length
        self.generator = generator
        self.within = None if within_seconds is None else int(within_seconds * SAMPLE_RATE)
        if self.within is not None and self.within < crop_length:
            raise DatasetError(f"Crops of {crop_length} samples cannot lie within the first {within_seconds} s.")
        if self.source.is_dir():
            self.notes = [(name, _note_from_fields(name, example, None).pitch)
                          for name, example in read_examples_json(self.source).items()]
        elif self.source.is_file():
            self.offsets = tfrecord_offsets(self.source)
            self.notes = None
        else:
            raise DatasetError(f"'{self.source}' is neither an NSynth json/wav folder nor a TFRecord file.")
        if len(self) == 0:
            raise DatasetError(f"'{self.source}' holds no notes.")
        self.skipped = set()

    def __len__(self):
        return len(self.notes) if self.notes is not None else len(self.offsets)

    def _load(self, index):
        """(audio, pitch, name) of note `index`."""
        if self.notes is not None:
            name, pitch = self.notes[index]
            return read_wav(self.source / "audio" / f"{name}.wav"), pitch, name
        note = read_tfrecord_at(self.source, self.offsets[index])
        return note.audio, note.pitch, note.note_str

    def __getitem__(self, index):
        for attempt in range(len(self)):
            candidate = (index + attempt) % len(self)
            if candidate in self.skipped:
                continue
            try:
                audio, pitch, name = self._load(candidate)
            except DatasetError as error:
                self._skip(candidate, str(error))
                continue
            if np.abs(audio).max(initial=0.0) < SILENCE_PEAK:
                self._skip(candidate, f"note '{name}' is silent.")
            elif len(audio) < self.crop_length:
                self._skip(candidate, f"note '{name}' has {len(audio)} samples, fewer than a crop.")
            else:
                return torch.from_numpy(self._crop(audio)), pitch
        raise DatasetError(f"No note in '{self.source}' is usable for training.")

    def _skip(self, index, reason):
        self.skipped.add(index)
        warnings.warn(f"Skipping a note: {reason}", stacklevel=3)

    def _crop(self, audio):
        end = len(audio) if self.within is None else min(len(audio), self.within)
        start = int(torch.randint(0, end - self.crop_length + 1, (1,), generator=self.generator))
        return np.ascontiguousarray(audio[start: start + self.crop_length], dtype=np.float32)


CONTOUR_FRAMES = 500  # a cached contour's frames: one per 128 samples of a 4 s note


def contour_path(shard: Path) -> Path:
    """Where train/cache_f0.py keeps the f0 contours of a Z shard's notes: shard-00012 -> f0-00012 beside it."""
    return shard.with_name(shard.name.replace("shard-", "f0-", 1))


def read_contours(shard: Path, notes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(motion [notes, frames] in cents from each note's median, voiced [notes, frames]) from the contour file
    beside a Z shard; none voiced when it is not there."""
    path = contour_path(shard)
    if not path.exists():
        return torch.zeros(notes, CONTOUR_FRAMES), torch.zeros(notes, CONTOUR_FRAMES, dtype=torch.bool)
    with safe_open(str(path), "pt") as file:
        cents, voiced = file.get_tensor("cents"), file.get_tensor("voiced")
    centre = torch.nanmedian(torch.where(voiced, cents, torch.nan), dim=1, keepdim=True).values
    return torch.where(voiced, cents - torch.nan_to_num(centre), 0.0), voiced


class EncodedNoteDataset(torch.utils.data.Dataset):
    """Whole notes with their cached Z (train/cache_z.py): item i is (audio [T] at NOTE_PEAK, MIDI pitch,
    Z [frames, latent], pitch motion [contour frames], voiced [contour frames]), the audio as the encoder heard
    it. The motion is the note's measured f0 contour (train/cache_f0.py) in cents from its own median over the
    voiced frames; a note whose contour is not cached (yet) has none voiced. Z and contours are held in memory;
    audio is read from `notes`.

    `more` are further (notes, cache) pairs, e.g. the notes of another SoundFont rendered apart: their notes join
    these, each read from its own folder (so equal names do not clash), and a pair given twice weighs twice."""

    def __init__(self, notes, cache, *more):
        self.generator = None  # whole notes: nothing is drawn at random here
        self.names, self.folders, z, pitch, motion, voiced = [], [], [], [], [], []
        for notes, cache in [(notes, cache), *more]:
            shards = sorted(Path(cache).glob("shard-*.safetensors"))
            if not shards:
                raise DatasetError(f"'{cache}' holds no cached Z; make it with `python -m train.cache_z`.")
            for shard in shards:
                with safe_open(str(shard), "pt") as file:
                    names = json.loads(file.metadata()["names"])
                    z.append(file.get_tensor("z"))
                    pitch.append(file.get_tensor("pitch"))
                shard_motion, shard_voiced = read_contours(shard, len(names))
                motion.append(shard_motion)
                voiced.append(shard_voiced)
                self.names += names
                self.folders += [Path(notes)] * len(names)
        self.z, self.pitch = torch.cat(z), torch.cat(pitch)
        self.motion, self.voiced = torch.cat(motion), torch.cat(voiced)

    def __len__(self):
        return len(self.names)

    def __getitem__(self, index):
        audio = normalize_loudness(read_wav(self.folders[index] / "audio" / f"{self.names[index]}.wav"), NOTE_PEAK)
        return (torch.from_numpy(audio), int(self.pitch[index]), self.z[index], self.motion[index],
                self.voiced[index])
