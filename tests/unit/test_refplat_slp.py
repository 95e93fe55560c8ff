"""The Server List Ping codec: VarInts, strings, handshakes and frame reassembly."""

from __future__ import annotations

import pytest

from refplat.slp import (
    FrameBuffer,
    IncompleteError,
    ProtocolError,
    decode_handshake,
    decode_varint,
    encode_string,
    encode_varint,
    frame,
)

HANDSHAKE_LOCALHOST = bytes.fromhex("0f002c09") + b"localhost" + bytes.fromhex("63dd01")
PING_14515484 = bytes.fromhex("09010000000000dd7d1c")


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (255, "ff01"),
        (25565, "ddc701"),
        (2097151, "ffff7f"),
        (2147483647, "ffffffff07"),
        (-1, "ffffffff0f"),
        (-2147483648, "8080808008"),
    ],
    ids=str,
)
def test_varint_round_trips_through_the_documented_bytes(value: int, encoded: str) -> None:
    assert bytes.fromhex(encoded) == encode_varint(value)
    assert (value, len(bytes.fromhex(encoded))) == decode_varint(bytes.fromhex(encoded))


def test_varint_with_a_sixth_byte_is_rejected() -> None:
    with pytest.raises(ProtocolError):
        decode_varint(bytes.fromhex("ffffffffff01"))


def test_varint_cut_short_asks_for_more_bytes() -> None:
    with pytest.raises(IncompleteError):
        decode_varint(bytes.fromhex("ff"))


def test_varint_out_of_the_32_bit_range_is_refused() -> None:
    with pytest.raises(ValueError, match="out of range"):
        encode_varint(2**31)


def test_known_handshake_bytes_decode_to_localhost_25565_protocol_44() -> None:
    packets = FrameBuffer().feed(HANDSHAKE_LOCALHOST)

    assert [0] == [packet_id for packet_id, _ in packets]
    handshake = decode_handshake(packets[0][1])
    assert (44, "localhost", 25565, 1) == (
        handshake.protocol,
        handshake.address,
        handshake.port,
        handshake.next_state,
    )


def test_known_ping_bytes_are_what_frame_builds() -> None:
    assert PING_14515484 == frame(0x01, (14515484).to_bytes(8, "big", signed=True))


def test_frames_split_byte_by_byte_are_reassembled() -> None:
    frames = FrameBuffer()
    packets = []
    for byte in HANDSHAKE_LOCALHOST + PING_14515484:
        packets += frames.feed(bytes([byte]))

    assert [0, 1] == [packet_id for packet_id, _ in packets]
    assert (14515484).to_bytes(8, "big") == packets[1][1]


def test_coalesced_frames_in_one_chunk_come_out_one_by_one() -> None:
    status_request = bytes.fromhex("0100")
    packets = FrameBuffer().feed(HANDSHAKE_LOCALHOST + status_request + PING_14515484)

    assert [(0, 14), (0, 0), (1, 8)] == [(pid, len(payload)) for pid, payload in packets]


def test_a_chunk_ending_mid_frame_keeps_the_rest_for_the_next_chunk() -> None:
    frames = FrameBuffer()
    data = HANDSHAKE_LOCALHOST + PING_14515484

    first = frames.feed(data[:20])
    second = frames.feed(data[20:])

    assert ([0], [1]) == ([p for p, _ in first], [p for p, _ in second])


@pytest.mark.parametrize(
    "data",
    [bytes.fromhex("00"), encode_varint(1_000_000), bytes.fromhex("ffffffffff01")],
    ids=["zero-length", "oversized", "six-byte-length"],
)
def test_a_frame_with_a_bad_length_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        FrameBuffer().feed(data)


def test_a_truncated_handshake_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        decode_handshake(bytes.fromhex("2c") + encode_string("localhost") + b"\x63")
