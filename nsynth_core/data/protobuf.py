"""The protobuf wire format, just enough to read tf.train.Example records and TensorFlow checkpoint indexes."""


class ProtobufError(ValueError):
    pass


FIXED_WIDTH = {1: 8, 5: 4}  # wire type -> bytes (fixed64/double, fixed32/float)


def read_varint(buffer: bytes, position: int) -> tuple[int, int]:
    """(value, position after it) of the base-128 varint at `position`."""
    value = shift = 0
    while True:
        if position >= len(buffer):
            raise ProtobufError("a number runs past the end of the message")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def fields(message: bytes):
    """Yield (field number, wire type, value) of a serialized message: an int for a varint, the raw little-endian
    bytes of a fixed-width number, the bytes of a length-delimited field (a string or a sub-message)."""
    position = 0
    while position < len(message):
        tag, position = read_varint(message, position)
        field, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            value, position = read_varint(message, position)
            yield field, wire_type, value
            continue
        if wire_type == 2:
            length, position = read_varint(message, position)
        elif wire_type in FIXED_WIDTH:
            length = FIXED_WIDTH[wire_type]
        else:
            raise ProtobufError(f"unsupported wire type {wire_type}")
        if position + length > len(message):
            raise ProtobufError("a field runs past the end of the message")
        yield field, wire_type, bytes(message[position: position + length])
        position += length
