"""The Minecraft Server List Ping protocol (Java edition, 1.7+): codec and asyncio server.

A game server of the reference platform is one :func:`start_listener` call: a TCP listener
that answers handshake, status request and ping, so that real clients such as ``mcstatus``
can query it. Connections are :class:`asyncio.Protocol` objects, so one process can hold
thousands of listeners without a thread per server.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

log = logging.getLogger(__name__)

MAX_VARINT_BYTES = 5
MAX_FRAME_BYTES = 4096
HANDSHAKE_ID = 0x00
STATUS_ID = 0x00
PING_ID = 0x01
NEXT_STATE_STATUS = 1
_LONG = struct.Struct(">q")
_USHORT = struct.Struct(">H")


class ProtocolError(ValueError):
    """The peer sent bytes that are not a valid Server List Ping exchange."""


class IncompleteError(ValueError):
    """More bytes are needed before the value can be decoded."""


def encode_varint(value: int) -> bytes:
    """Encode a signed 32-bit integer as a VarInt (negative values take 5 bytes)."""
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"VarInt out of range: {value}")
    remaining = value & 0xFFFFFFFF
    out = bytearray()
    while True:
        byte = remaining & 0x7F
        remaining >>= 7
        if remaining:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes, offset: int = 0) -> tuple[int, int]:
    """Decode a VarInt at ``offset``; return ``(value, next offset)``.

    Raise :class:`IncompleteError` when ``data`` ends mid-VarInt and :class:`ProtocolError`
    when a sixth byte would be needed.
    """
    result = 0
    for index in range(MAX_VARINT_BYTES):
        if offset + index >= len(data):
            raise IncompleteError("VarInt is incomplete")
        byte = data[offset + index]
        result |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            result &= 0xFFFFFFFF
            if result >= 2**31:
                result -= 2**32
            return result, offset + index + 1
    raise ProtocolError("VarInt is longer than 5 bytes")


def encode_string(text: str) -> bytes:
    """Encode a String: VarInt byte length, then UTF-8."""
    raw = text.encode("utf-8")
    return encode_varint(len(raw)) + raw


def decode_string(data: bytes, offset: int) -> tuple[str, int]:
    """Decode a String at ``offset``; return ``(text, next offset)``."""
    length, start = decode_varint(data, offset)
    end = start + length
    if length < 0 or end > len(data):
        raise ProtocolError("String length runs past the packet")
    try:
        return data[start:end].decode("utf-8"), end
    except UnicodeDecodeError as exc:
        raise ProtocolError("String is not UTF-8") from exc


def frame(packet_id: int, payload: bytes = b"") -> bytes:
    """Frame one packet: VarInt length of (id + payload), id, payload."""
    body = encode_varint(packet_id) + payload
    return encode_varint(len(body)) + body


class FrameBuffer:
    """Reassembles packets from TCP chunks that may split or coalesce frames."""

    def __init__(self, *, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max = max_frame_bytes

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """Add a chunk; return every complete packet as ``(packet id, payload)``."""
        self._buffer.extend(chunk)
        packets: list[tuple[int, bytes]] = []
        while True:
            data = bytes(self._buffer)
            try:
                length, start = decode_varint(data)
            except IncompleteError:
                return packets
            if length < 1 or length > self._max:
                raise ProtocolError(f"frame length {length} is out of bounds")
            if len(data) < start + length:
                return packets
            body = data[start : start + length]
            del self._buffer[: start + length]
            packet_id, payload_start = decode_varint(body)
            packets.append((packet_id, body[payload_start:]))


@dataclass(frozen=True)
class Handshake:
    """The first packet of every connection."""

    protocol: int
    address: str
    port: int
    next_state: int


def decode_handshake(payload: bytes) -> Handshake:
    """Decode the data of a Handshake packet (id 0x00)."""
    try:
        protocol, offset = decode_varint(payload)
        address, offset = decode_string(payload, offset)
        if len(address) > 255:
            raise ProtocolError("server address is longer than 255 characters")
        (port,) = _USHORT.unpack_from(payload, offset)
        next_state, offset = decode_varint(payload, offset + _USHORT.size)
    except (IncompleteError, struct.error) as exc:
        raise ProtocolError("handshake is truncated") from exc
    if offset != len(payload):
        raise ProtocolError("handshake has trailing bytes")
    return Handshake(protocol=protocol, address=address, port=port, next_state=next_state)


@dataclass(frozen=True)
class StatusInfo:
    """What a game server reports in its status response."""

    version_name: str
    protocol: int
    players_online: int
    players_max: int
    description: str

    def to_json(self) -> str:
        """The status JSON that clients expect."""
        return json.dumps(
            {
                "version": {"name": self.version_name, "protocol": self.protocol},
                "players": {"max": self.players_max, "online": self.players_online},
                "description": {"text": self.description},
            }
        )


class _Phase(enum.Enum):
    HANDSHAKE = enum.auto()
    STATUS = enum.auto()


class SlpConnection(asyncio.Protocol):
    """One client connection: handshake, then status requests and one ping."""

    def __init__(self, *, status: Callable[[], StatusInfo], read_timeout_s: float) -> None:
        self._status = status
        self._read_timeout_s = read_timeout_s
        self._frames = FrameBuffer()
        self._phase = _Phase.HANDSHAKE
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's are not subclasses of asyncio.Transport; no isinstance).
        self._transport = cast(asyncio.Transport, transport)
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._arm_timer()
        try:
            for packet_id, payload in self._frames.feed(data):
                self._handle(packet_id, payload)
                if self._transport is None or self._transport.is_closing():
                    return
        except ProtocolError as exc:
            log.debug("closing connection after bad input: %s", exc)
            self._close()

    def _handle(self, packet_id: int, payload: bytes) -> None:
        if self._phase is _Phase.HANDSHAKE:
            if packet_id != HANDSHAKE_ID:
                raise ProtocolError(f"expected a handshake, got packet {packet_id:#x}")
            if decode_handshake(payload).next_state != NEXT_STATE_STATUS:
                self._close()
                return
            self._phase = _Phase.STATUS
        elif packet_id == STATUS_ID and not payload:
            self._send(frame(STATUS_ID, encode_string(self._status().to_json())))
        elif packet_id == PING_ID and len(payload) == _LONG.size:
            self._send(frame(PING_ID, payload))
            self._close()
        else:
            raise ProtocolError(f"unexpected packet {packet_id:#x} of {len(payload)} bytes")

    def _send(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._read_timeout_s, self._close)


async def start_listener(
    *, host: str, port: int, status: Callable[[], StatusInfo], read_timeout_s: float = 5.0
) -> asyncio.Server:
    """Start a game-server listener; port 0 lets the kernel choose (see ``bound_port``)."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SlpConnection(status=status, read_timeout_s=read_timeout_s), host, port
    )


def bound_port(server: asyncio.Server) -> int:
    """The TCP port a listener is bound to."""
    return int(server.sockets[0].getsockname()[1])
