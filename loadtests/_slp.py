"""A Server List Ping client (Minecraft Java edition, 1.7+) on plain blocking sockets.

It uses only the standard ``socket`` module, so under Locust (whose import monkey-patches the
process with gevent) every connect, send and receive yields to other users instead of blocking
the process; without gevent it is an ordinary blocking client.

One exchange is one TCP connection, as a launcher's server list does it:

- :func:`status`: Handshake (next state 1) and Status Request, sent in one write; the Status
  Response is parsed into :class:`Status` (the fields ``mcstatus`` requires are checked the way
  it checks them).
- :func:`ping`: Handshake and Ping(Long), sent in one write; the Pong must echo the Long. The
  server closes after the Pong.

Failures are :class:`SlpError` subclasses whose ``kind`` says what went wrong, so a load test
can count them apart: ``connect`` (refused, unreachable), ``timeout`` (no connection or no
reply in time), ``closed`` (the peer closed or reset the connection before replying) and
``protocol`` (the bytes are not a valid reply). A :class:`Target` resolves the host name once
and holds the handshake bytes, so a hot loop does no name lookup and no encoding.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 767  # what the client announces; servers answer any value
MAX_VARINT_BYTES = 5
MAX_FRAME_BYTES = 1 << 21  # the protocol's limit for a packet's length
RECV_BYTES = 4096
HANDSHAKE_ID = 0x00
STATUS_ID = 0x00
PING_ID = 0x01
NEXT_STATE_STATUS = 1
STATUS_REQUEST = b"\x01\x00"  # length 1, packet id 0x00, no data
_LONG = struct.Struct(">q")
_USHORT = struct.Struct(">H")


class SlpError(Exception):
    """A Server List Ping exchange failed; ``kind`` names how (see the module docstring)."""

    kind = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.kind}: {detail}")
        self.detail = detail


class SlpConnectError(SlpError):
    """The TCP connection could not be made (refused, unreachable, no route)."""

    kind = "connect"


class SlpTimeout(SlpError):
    """No connection, or no complete reply, within the timeout."""

    kind = "timeout"


class SlpClosedError(SlpError):
    """The server closed or reset the connection before its reply was complete."""

    kind = "closed"


class SlpProtocolError(SlpError):
    """The server's bytes are not a valid reply (framing, packet id, JSON, fields, pong)."""

    kind = "protocol"


# Codec


def encode_varint(value: int) -> bytes:
    """A signed 32-bit integer as a VarInt (7 bits a byte, least significant group first)."""
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"VarInt out of range: {value}")
    remaining = value & 0xFFFFFFFF
    out = bytearray()
    while remaining > 0x7F:
        out.append((remaining & 0x7F) | 0x80)
        remaining >>= 7
    out.append(remaining)
    return bytes(out)


def decode_varint(data: bytes | bytearray, offset: int = 0) -> tuple[int, int] | None:
    """``(value, next offset)`` of the VarInt at ``offset``; None when ``data`` ends inside it.

    Raise :class:`SlpProtocolError` when it would need a sixth byte.
    """
    result = 0
    for index in range(MAX_VARINT_BYTES):
        if offset + index >= len(data):
            return None
        byte = data[offset + index]
        result |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if result >= 2**31:
                result -= 2**32
            return result, offset + index + 1
    raise SlpProtocolError("a VarInt is longer than 5 bytes")


def encode_string(text: str) -> bytes:
    """A String: VarInt byte length, then UTF-8."""
    raw = text.encode("utf-8")
    return encode_varint(len(raw)) + raw


def frame(packet_id: int, payload: bytes = b"") -> bytes:
    """One packet: VarInt length of (id + payload), VarInt id, payload."""
    body = encode_varint(packet_id) + payload
    return encode_varint(len(body)) + body


def handshake(host: str, port: int, *, protocol: int = PROTOCOL_VERSION) -> bytes:
    """The Handshake packet asking for the status state."""
    data = encode_varint(protocol) + encode_string(host) + _USHORT.pack(port)
    return frame(HANDSHAKE_ID, data + encode_varint(NEXT_STATE_STATUS))


# Targets and results


@dataclass(frozen=True)
class Target:
    """A game server to query: ``host`` as given (sent in the handshake), ``ip`` to connect."""

    host: str
    port: int
    ip: str
    family: int = socket.AF_INET
    hello: bytes = field(default=b"", repr=False)  # the handshake, encoded once

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


def resolve(host: str, port: int) -> Target:
    """A :class:`Target` with ``host`` looked up once; SlpConnectError when it does not resolve."""
    if not 0 < port < 65536:
        raise ValueError(f"port must be 1-65535, got {port}")
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:
        raise SlpConnectError(f"cannot resolve {host!r}: {exc}") from None
    return Target(
        host=host, port=port, ip=str(sockaddr[0]), family=family, hello=handshake(host, port)
    )


def parse_target(text: str) -> Target:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as a resolved :class:`Target`."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return resolve(host.strip("[]"), int(port))


@dataclass(frozen=True)
class Status:
    """A parsed Status Response; ``raw`` is the whole JSON document."""

    version_name: str
    protocol: int
    players_online: int
    players_max: int
    description: str
    raw: dict[str, Any]
    bytes_read: int


@dataclass(frozen=True)
class Pong:
    """A completed ping: ``rtt_s`` from sending the Ping (with the handshake) to the Pong."""

    rtt_s: float
    bytes_read: int


# Exchanges


def status(target: Target, *, timeout_s: float) -> Status:
    """Ask ``target`` for its status (one connection); raise an :class:`SlpError` on failure."""
    with _Connection(target, timeout_s=timeout_s) as conn:
        conn.send(target.hello + STATUS_REQUEST)
        packet_id, payload = conn.read_packet()
    if packet_id != STATUS_ID:
        raise SlpProtocolError(f"expected a status response (0x00), got packet {packet_id:#x}")
    return parse_status(payload, bytes_read=conn.bytes_read)


def ping(target: Target, *, timeout_s: float, token: int | None = None) -> Pong:
    """Ping ``target`` (one connection) and check its Pong echoes ``token`` (random if None)."""
    token = random.getrandbits(63) if token is None else token
    with _Connection(target, timeout_s=timeout_s) as conn:
        sent_at = time.perf_counter()
        conn.send(target.hello + b"\x09\x01" + _LONG.pack(token))
        packet_id, payload = conn.read_packet()
        rtt_s = time.perf_counter() - sent_at
    if packet_id != PING_ID or len(payload) != _LONG.size:
        raise SlpProtocolError(f"expected a pong (0x01, 8 bytes), got packet {packet_id:#x}")
    (echoed,) = _LONG.unpack(payload)
    if echoed != token:
        raise SlpProtocolError(f"the pong echoed {echoed}, not the {token} that was sent")
    return Pong(rtt_s=rtt_s, bytes_read=conn.bytes_read)


def parse_status(payload: bytes, *, bytes_read: int = 0) -> Status:
    """Decode a Status Response's data (one String of JSON) and check its required fields."""
    header = decode_varint(payload)
    if header is None or header[1] + header[0] != len(payload):
        raise SlpProtocolError("the status response's string length does not match its packet")
    try:
        raw = json.loads(payload[header[1] :].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SlpProtocolError(f"the status response is not JSON: {exc}") from None
    try:
        version, players = raw["version"], raw["players"]
        fields = (version["name"], version["protocol"], players["online"], players["max"])
    except (KeyError, TypeError) as exc:
        raise SlpProtocolError(f"the status response lacks {exc}") from None
    name, protocol, online, most = fields
    if not isinstance(name, str) or not all(type(n) is int for n in (protocol, online, most)):
        raise SlpProtocolError("the status response's version or players have the wrong types")
    return Status(
        version_name=name,
        protocol=protocol,
        players_online=online,
        players_max=most,
        description=plain_text(raw.get("description", "")),
        raw=raw,
        bytes_read=bytes_read,
    )


def plain_text(component: Any) -> str:
    """The plain text of a description: a string or a chat component (``text`` + ``extra``)."""
    if isinstance(component, str):
        return component
    if isinstance(component, list):
        return "".join(plain_text(part) for part in component)
    if isinstance(component, dict):
        extra = component.get("extra", [])
        return plain_text(component.get("text", "")) + plain_text(extra)
    return ""


class _Connection:
    """One TCP connection with a deadline for the whole exchange; always closed on exit.

    Each socket operation waits at most ``timeout_s``; receiving stops at the deadline, and
    once less than half the timeout is left each wait is cut to what is left, so an exchange
    takes at most 1.5 times the timeout. (Setting the timeout before every receive would cost
    a few per cent of a load generator's CPU for nothing on the common, fast path.)
    """

    def __init__(self, target: Target, *, timeout_s: float) -> None:
        self._deadline = time.monotonic() + timeout_s
        self._timeout_s = timeout_s
        self._buffer = bytearray()
        self.bytes_read = 0
        self._sock = socket.socket(target.family, socket.SOCK_STREAM)
        self._sock.settimeout(timeout_s)
        try:
            self._sock.connect((target.ip, target.port))
        except TimeoutError:
            self._sock.close()
            raise SlpTimeout(f"no connection within {timeout_s:g} s") from None
        except OSError as exc:
            self._sock.close()
            raise SlpConnectError(exc.strerror or type(exc).__name__) from None

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._sock.close()

    def send(self, data: bytes) -> None:
        try:
            # A request fits the send buffer of a new connection: one send() does it, without
            # the timer gevent's sendall() sets up; sendall() only finishes a partial send.
            sent = self._sock.send(data)
            if sent < len(data):
                self._sock.sendall(data[sent:])
        except TimeoutError:
            raise SlpTimeout(f"could not send within {self._timeout_s:g} s") from None
        except OSError as exc:
            raise SlpClosedError(f"send failed: {exc.strerror or type(exc).__name__}") from None

    def read_packet(self) -> tuple[int, bytes]:
        """Receive until one whole packet is buffered; return ``(packet id, data)``."""
        while True:
            header = decode_varint(self._buffer)
            if header is not None:
                length, start = header
                if not 0 < length <= MAX_FRAME_BYTES:
                    raise SlpProtocolError(f"a frame length of {length} is out of bounds")
                if len(self._buffer) >= start + length:
                    body = bytes(self._buffer[start : start + length])
                    del self._buffer[: start + length]
                    packet = decode_varint(body)
                    if packet is None:
                        raise SlpProtocolError("a packet id runs past its frame")
                    return packet[0], body[packet[1] :]
            self._receive()

    def _receive(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise SlpTimeout(f"no complete reply within {self._timeout_s:g} s")
        if remaining < self._timeout_s / 2:
            self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(RECV_BYTES)
        except TimeoutError:
            raise SlpTimeout(f"no complete reply within {self._timeout_s:g} s") from None
        except OSError as exc:
            raise SlpClosedError(f"receive failed: {exc.strerror or type(exc).__name__}") from None
        if not chunk:
            if self._buffer:
                raise SlpProtocolError("the server closed the connection mid-frame")
            raise SlpClosedError("the server closed the connection before replying")
        self.bytes_read += len(chunk)
        self._buffer += chunk
