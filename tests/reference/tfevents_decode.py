#!/usr/bin/python3
"""An independent reader of TensorBoard event files (no TensorFlow, no protobuf library).

    tfevents_decode.py FILE      ->  one JSON object per event on stdout

Reads the TFRecord framing (uint64 length, uint32 masked CRC-32C of the length bytes, the data,
uint32 masked CRC-32C of the data; little-endian) and checks both CRCs with its own bitwise
CRC-32C; decodes the protocol buffer wire format by hand (varint, fixed64, length-delimited,
fixed32 fields) into tensorflow's Event message:
    Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
    Summary { repeated Value value = 1; }    Value { string tag = 1; float simple_value = 2; }
Each event prints as {"wall_time", "step", "file_version"} or {"wall_time", "step", "tag",
"value"} (one per Summary.Value). Any framing, CRC or wire-format error exits 1 with a message.
"""
import json
import struct
import sys


def crc32c(data: bytes) -> int:
    """Bit at a time, reflected Castagnoli polynomial: slow and obviously right."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the CRC catalogue's check value


def records(raw: bytes):
    at = 0
    while at < len(raw):
        if at + 12 > len(raw):
            raise ValueError(f"truncated record header at byte {at}")
        (length,) = struct.unpack_from("<Q", raw, at)
        (length_crc,) = struct.unpack_from("<I", raw, at + 8)
        if masked(crc32c(raw[at:at + 8])) != length_crc:
            raise ValueError(f"bad length CRC at byte {at}")
        data = raw[at + 12:at + 12 + length]
        if len(data) != length or at + 16 + length > len(raw):
            raise ValueError(f"truncated record at byte {at}")
        (data_crc,) = struct.unpack_from("<I", raw, at + 12 + length)
        if masked(crc32c(data)) != data_crc:
            raise ValueError(f"bad data CRC at byte {at}")
        yield data
        at += 16 + length


def varint(buf: bytes, at: int):
    shift = value = 0
    while True:
        if at >= len(buf):
            raise ValueError("truncated varint")
        b = buf[at]
        at += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, at


def fields(buf: bytes):
    """(field number, wire type, value) for each field of one message."""
    at = 0
    while at < len(buf):
        key, at = varint(buf, at)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, at = varint(buf, at)
        elif wire == 1:
            value, at = buf[at:at + 8], at + 8
        elif wire == 2:
            n, at = varint(buf, at)
            value, at = buf[at:at + n], at + n
        elif wire == 5:
            value, at = buf[at:at + 4], at + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if at > len(buf):
            raise ValueError("field runs past the message")
        yield field, wire, value


def decode_event(data: bytes):
    event = {"wall_time": 0.0, "step": 0}
    values = []
    for field, wire, value in fields(data):
        if field == 1 and wire == 1:
            (event["wall_time"],) = struct.unpack("<d", value)
        elif field == 2 and wire == 0:
            event["step"] = value - (1 << 64) if value >= 1 << 63 else value
        elif field == 3 and wire == 2:
            event["file_version"] = value.decode()
        elif field == 5 and wire == 2:
            for sf, sw, sv in fields(value):
                if sf != 1 or sw != 2:
                    raise ValueError(f"unexpected Summary field {sf}")
                tag, simple = None, None
                for vf, vw, vv in fields(sv):
                    if vf == 1 and vw == 2:
                        tag = vv.decode()
                    elif vf == 2 and vw == 5:
                        (simple,) = struct.unpack("<f", vv)
                if tag is None or simple is None:
                    raise ValueError("a Summary.Value without tag or simple_value")
                values.append((tag, simple))
        else:
            raise ValueError(f"unexpected Event field {field} (wire type {wire})")
    if not values:
        return [event]
    return [dict(event, tag=t, value=v) for t, v in values]


def main():
    raw = open(sys.argv[1], "rb").read()
    try:
        for data in records(raw):
            for e in decode_event(data):
                print(json.dumps(e))
    except ValueError as err:
        print(f"tfevents_decode: {sys.argv[1]}: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
