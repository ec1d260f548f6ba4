"""Read TensorFlow V2 checkpoints (`<prefix>.index` + `<prefix>.data-NNNNN-of-NNNNN`) without TensorFlow.

The .index file is a LevelDB-style sorted table: key = variable name, value = a serialized BundleEntryProto
telling the dtype, shape, which data shard holds the raw little-endian bytes, where, how many, and their
masked CRC32C. The empty key holds a BundleHeaderProto (shard count, byte order).
Only the few protobuf fields those two messages use are decoded, by hand, so no protobuf schema is needed.
"""

import struct
from dataclasses import dataclass
from pathlib import Path

import crc32c
import numpy as np

from nsynth_core.data import protobuf
from nsynth_core.data.protobuf import ProtobufError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_LENGTH = 48  # two varint block handles padded to 40 bytes, then the 8-byte magic
BLOCK_TRAILER_LENGTH = 5  # compression type byte + masked CRC32C

# TensorFlow's DataType enum -> NumPy, for the types whose bytes are stored as a plain array.
NUMPY_DTYPES = {
    1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
    10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64,
}


class CheckpointFormatError(ValueError):
    """The files are not a readable TensorFlow V2 checkpoint, or do not hold what was asked for."""


@dataclass(frozen=True)
class TensorEntry:
    dtype: int  # TensorFlow DataType enum value
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None  # unmasked CRC32C of the stored bytes, when the writer recorded one
    sliced: bool  # a partitioned variable saved as slices (not supported)


def checkpoint_prefix(path: str | Path) -> Path:
    """Accept the prefix itself or either of its files (`model.ckpt-200000.index` is a common slip)."""
    path = Path(path)
    name = path.name
    if name.endswith(".index"):
        return path.with_name(name[: -len(".index")])
    if ".data-" in name:
        return path.with_name(name[: name.index(".data-")])
    return path


def unmask_crc(masked: int) -> int:
    """TensorFlow stores CRCs "masked" (rotated and offset) so a CRC of data containing CRCs stays strong."""
    rotated = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF


def read_varint(buffer: bytes, position: int) -> tuple[int, int]:
    try:
        return protobuf.read_varint(buffer, position)
    except ProtobufError:
        raise CheckpointFormatError("The checkpoint index is truncated (a number runs past its end).") from None


def protobuf_fields(message: bytes):
    """Yield (field_number, value) of a serialized protobuf; value is an int or the bytes of a sub-message."""
    try:
        for field, wire_type, value in protobuf.fields(message):
            yield field, int.from_bytes(value, "little") if wire_type in protobuf.FIXED_WIDTH else value
    except ProtobufError as error:
        raise CheckpointFormatError(f"The checkpoint index holds an unreadable entry ({error}).") from None


def parse_shape(message: bytes) -> tuple[int, ...]:
    dims = []
    for field, value in protobuf_fields(message):
        if field == 2:  # repeated Dim { int64 size = 1; string name = 2; }
            dims.append(next((v for f, v in protobuf_fields(value) if f == 1), 0))
    return tuple(dims)


def parse_entry(message: bytes) -> TensorEntry:
    fields = {"dtype": 0, "shape": (), "shard_id": 0, "offset": 0, "size": 0, "crc32c": None, "sliced": False}
    for field, value in protobuf_fields(message):
        if field == 1:
            fields["dtype"] = value
        elif field == 2:
            fields["shape"] = parse_shape(value)
        elif field == 3:
            fields["shard_id"] = value
        elif field == 4:
            fields["offset"] = value
        elif field == 5:
            fields["size"] = value
        elif field == 6:
            fields["crc32c"] = unmask_crc(value)
        elif field == 7:
            fields["sliced"] = True
    return TensorEntry(**fields)


def read_block(table: bytes, handle: bytes) -> bytes:
    """The contents of the block a (offset, size) handle points to, its checksum verified."""
    offset, position = read_varint(handle, 0)
    size, _ = read_varint(handle, position)
    end = offset + size
    if end + BLOCK_TRAILER_LENGTH > len(table):
        raise CheckpointFormatError("The checkpoint index is truncated (a block runs past the end of the file).")
    block, compression = table[offset:end], table[end]
    stored_crc = struct.unpack_from("<I", table, end + 1)[0]
    if crc32c.crc32c(table[offset : end + 1]) != unmask_crc(stored_crc):
        raise CheckpointFormatError("The checkpoint index is corrupt (a block fails its CRC32C check).")
    if compression != 0:
        # TensorFlow has always written bundle indexes uncompressed; anything else is not a bundle index.
        raise CheckpointFormatError(f"The checkpoint index uses block compression {compression}, not supported.")
    return block


def block_entries(block: bytes):
    """Yield (key, value) of a table block. Keys share a prefix with the previous key to save space."""
    if len(block) < 4:
        raise CheckpointFormatError("The checkpoint index holds a malformed block.")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    entries_end = len(block) - 4 * (num_restarts + 1)
    position, key = 0, b""
    while position < entries_end:
        shared, position = read_varint(block, position)
        unshared, position = read_varint(block, position)
        value_length, position = read_varint(block, position)
        key = key[:shared] + block[position : position + unshared]
        position += unshared
        yield key, block[position : position + value_length]
        position += value_length


def read_index(index_path: Path) -> tuple[dict[str, TensorEntry], int, str]:
    """Variable entries by name, the number of data shards, and the byte order ('<' or '>')."""
    table = index_path.read_bytes()
    if len(table) < FOOTER_LENGTH or struct.unpack_from("<Q", table, len(table) - 8)[0] != TABLE_MAGIC:
        raise CheckpointFormatError(f"{index_path} is not a TensorFlow checkpoint index (no table footer).")
    footer = table[-FOOTER_LENGTH:]
    _, position = read_varint(footer, read_varint(footer, 0)[1])  # skip the metaindex handle's two numbers
    index_block = read_block(table, footer[position:])
    entries, num_shards, byte_order = {}, 1, "<"
    for _, data_handle in block_entries(index_block):
        for key, value in block_entries(read_block(table, data_handle)):
            if key == b"":  # BundleHeaderProto
                for field, number in protobuf_fields(value):
                    if field == 1:
                        num_shards = number
                    elif field == 2:
                        byte_order = ">" if number == 1 else "<"
            else:
                entries[key.decode()] = parse_entry(value)
    return entries, num_shards, byte_order


class TFCheckpoint:
    """A TensorFlow V2 checkpoint opened by its prefix, e.g. `TFCheckpoint("wavenet-ckpt/model.ckpt-200000")`."""

    def __init__(self, path: str | Path):
        self.prefix = checkpoint_prefix(path)
        index_path = self.prefix.with_name(self.prefix.name + ".index")
        if not index_path.is_file():
            raise CheckpointFormatError(
                f"No TensorFlow checkpoint at {self.prefix}: {index_path.name} is missing. "
                "Give the checkpoint prefix, e.g. path/to/model.ckpt-200000.")
        self.entries, self.num_shards, self.byte_order = read_index(index_path)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return sorted(self.entries)

    def shard_path(self, shard_id: int) -> Path:
        return self.prefix.with_name(f"{self.prefix.name}.data-{shard_id:05d}-of-{self.num_shards:05d}")

    def read(self, name: str) -> np.ndarray:
        """The variable's value as a NumPy array, after checking its CRC32C."""
        if name not in self.entries:
            raise CheckpointFormatError(f"The checkpoint {self.prefix.name} has no variable {name!r}.")
        entry = self.entries[name]
        if entry.sliced:
            raise CheckpointFormatError(f"{name!r} is saved in slices (a partitioned variable); not supported.")
        if entry.dtype not in NUMPY_DTYPES:
            raise CheckpointFormatError(f"{name!r} has TensorFlow dtype {entry.dtype}, which is not supported.")
        dtype = np.dtype(NUMPY_DTYPES[entry.dtype]).newbyteorder(self.byte_order)
        expected_size = int(np.prod(entry.shape, dtype=np.int64)) * dtype.itemsize
        if entry.size != expected_size:
            raise CheckpointFormatError(
                f"{name!r} claims {entry.size} bytes but its shape {entry.shape} needs {expected_size}.")
        shard = self.shard_path(entry.shard_id)
        if not shard.is_file():
            raise CheckpointFormatError(f"The checkpoint data file {shard.name} is missing beside the index.")
        with open(shard, "rb") as file:
            file.seek(entry.offset)
            data = file.read(entry.size)
        if len(data) != entry.size:
            raise CheckpointFormatError(f"{shard.name} is truncated: {name!r} runs past its end.")
        if entry.crc32c is not None and crc32c.crc32c(data) != entry.crc32c:
            raise CheckpointFormatError(f"{name!r} is corrupt in {shard.name} (CRC32C mismatch).")
        return np.frombuffer(data, dtype).reshape(entry.shape).astype(dtype.newbyteorder("="))
