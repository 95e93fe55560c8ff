"""The players' Server List Ping client (loadtests/_slp.py) against real listeners on loopback.

The game server is refplat's own listener, run on an asyncio loop in a thread; the faults come
from small misbehaving servers. ``mcstatus`` queries the same listener as a cross-check.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from mcstatus import JavaServer

from harness.util.net import free_port
from refplat.slp import StatusInfo, bound_port, start_listener
from tests.conftest import REPO_ROOT

STATUS = StatusInfo(
    version_name="1.21", protocol=767, players_online=3, players_max=20, description="hello"
)


def _load(name: str) -> ModuleType:
    """A module of loadtests/ by path (the directory is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "loadtests" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


slp: Any = _load("_slp")


class LoopThread:
    """An asyncio loop in a daemon thread, for servers the blocking client can reach."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._servers: list[asyncio.Server] = []

    def run(self, coro: Awaitable[Any]) -> Any:
        async def wrapper() -> Any:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout=10)

    def serve(self, start: Callable[[], Awaitable[asyncio.Server]]) -> int:
        server: asyncio.Server = self.run(start())
        self._servers.append(server)
        return bound_port(server)

    def close(self) -> None:
        async def shut() -> None:
            for server in self._servers:
                server.close()
                await server.wait_closed()
            await asyncio.sleep(0.05)  # let the handlers see their connections close

        try:
            self.run(shut())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            self.loop.close()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()


@pytest.fixture
def game_port(loop: LoopThread) -> int:
    """A refplat game-server listener's port."""
    return loop.serve(lambda: start_listener(host="127.0.0.1", port=0, status=lambda: STATUS))


def misbehaving(loop: LoopThread, reply: Callable[[bytes], bytes | None]) -> int:
    """A server that reads the request, writes ``reply(request)`` (None: nothing) and waits
    for the client to hang up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.read(4096)
        answer = reply(request)
        if answer is not None:
            writer.write(answer)
            await writer.drain()
            writer.close()
        else:
            await reader.read()  # until the client gives up
        writer.close()
        await writer.wait_closed()

    return loop.serve(lambda: asyncio.start_server(handle, "127.0.0.1", 0))


# The codec, against the bytes the protocol documentation gives


def test_the_handshake_for_localhost_is_the_documented_bytes() -> None:
    expected = bytes.fromhex("0f002c09") + b"localhost" + bytes.fromhex("63dd01")

    assert expected == slp.handshake("localhost", 25565, protocol=44)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, "00"), (127, "7f"), (128, "8001"), (25565, "ddc701"), (-1, "ffffffff0f")],
    ids=str,
)
def test_varints_round_trip_through_the_documented_bytes(value: int, encoded: str) -> None:
    raw = bytes.fromhex(encoded)

    assert (raw, (value, len(raw))) == (slp.encode_varint(value), slp.decode_varint(raw))


def test_a_varint_needing_a_sixth_byte_is_a_protocol_error() -> None:
    with pytest.raises(slp.SlpProtocolError):
        slp.decode_varint(bytes.fromhex("ffffffffff01"))


# Against refplat's listener


def test_status_reports_what_the_server_says(game_port: int) -> None:
    status = slp.status(slp.resolve("127.0.0.1", game_port), timeout_s=2)

    assert ("1.21", 767, 3, 20, "hello") == (
        status.version_name,
        status.protocol,
        status.players_online,
        status.players_max,
        status.description,
    )


def test_ping_gets_its_own_long_back(game_port: int) -> None:
    pong = slp.ping(slp.resolve("localhost", game_port), timeout_s=2, token=14515484)

    assert (10, True) == (pong.bytes_read, pong.rtt_s >= 0)


def test_the_client_and_mcstatus_see_the_same_status(game_port: int) -> None:
    ours = slp.status(slp.resolve("127.0.0.1", game_port), timeout_s=2)
    theirs = JavaServer("127.0.0.1", game_port, timeout=2).status(tries=1)

    assert theirs.raw == ours.raw
    assert (theirs.version.name, theirs.version.protocol) == (ours.version_name, ours.protocol)
    assert (theirs.players.online, theirs.players.max) == (ours.players_online, ours.players_max)
    assert theirs.motd.to_plain() == ours.description


def test_the_client_and_mcstatus_async_both_get_a_pong(game_port: int, loop: LoopThread) -> None:
    theirs = loop.run(JavaServer("127.0.0.1", game_port, timeout=2).async_ping(tries=1))
    ours = slp.ping(slp.resolve("127.0.0.1", game_port), timeout_s=2)

    assert (True, True) == (theirs >= 0, ours.rtt_s >= 0)


def test_a_reply_arriving_one_byte_at_a_time_is_reassembled(loop: LoopThread) -> None:
    body = b'{"version": {"name": "x", "protocol": 1}, "players": {"max": 2, "online": 0}}'
    reply = slp.frame(0x00, slp.encode_string(body.decode()))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        for byte in reply:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.001)
        writer.close()
        await writer.wait_closed()

    port = loop.serve(lambda: asyncio.start_server(handle, "127.0.0.1", 0))

    status = slp.status(slp.resolve("127.0.0.1", port), timeout_s=5)

    assert ("x", 2, "") == (status.version_name, status.players_max, status.description)


# Failures, each of its own kind


def test_a_port_nobody_listens_on_is_a_connect_error() -> None:
    target = slp.resolve("127.0.0.1", free_port())

    with pytest.raises(slp.SlpConnectError) as caught:
        slp.ping(target, timeout_s=2)

    assert "connect: Connection refused" == str(caught.value)


def test_a_server_that_never_answers_is_a_timeout(loop: LoopThread) -> None:
    target = slp.resolve("127.0.0.1", misbehaving(loop, lambda _request: None))

    with pytest.raises(slp.SlpTimeout) as caught:
        slp.status(target, timeout_s=0.3)

    assert "timeout" == caught.value.kind


def test_a_server_that_hangs_up_without_a_word_is_a_closed_error(loop: LoopThread) -> None:
    target = slp.resolve("127.0.0.1", misbehaving(loop, lambda _request: b""))

    with pytest.raises(slp.SlpClosedError):
        slp.ping(target, timeout_s=2)


def _status_reply(text: str) -> bytes:
    return slp.frame(0x00, slp.encode_string(text))


@pytest.mark.parametrize(
    ("exchange", "reply"),
    [
        ("status", _status_reply("{not json")),
        ("status", _status_reply('{"version": {"name": "x", "protocol": 1}}')),
        ("status", _status_reply('{"version": {"name": 1, "protocol": 1}, "players": {}}')),
        ("status", slp.frame(0x05, slp.encode_string("{}"))),
        ("status", _status_reply('{"version": {}}')[:-3]),  # truncated, then closed
        ("ping", slp.frame(0x01, (7).to_bytes(8, "big"))),  # not the Long that was sent
        ("ping", slp.frame(0x01, b"\x00\x01")),
        ("ping", bytes.fromhex("ffffffffff01")),
    ],
    ids=[
        "invalid-json",
        "no-players",
        "wrong-types",
        "wrong-packet-id",
        "truncated-frame",
        "pong-mismatch",
        "short-pong",
        "six-byte-varint",
    ],
)
def test_a_malformed_reply_is_a_protocol_error(
    loop: LoopThread, exchange: str, reply: bytes
) -> None:
    target = slp.resolve("127.0.0.1", misbehaving(loop, lambda _request: reply))

    with pytest.raises(slp.SlpProtocolError) as caught:
        getattr(slp, exchange)(target, timeout_s=2)

    assert str(caught.value).startswith("protocol: ")


def test_a_target_is_written_host_colon_port() -> None:
    target = slp.parse_target("127.0.0.1:25565")

    assert ("127.0.0.1:25565", "127.0.0.1") == (target.name, target.ip)
    with pytest.raises(ValueError, match="HOST:PORT"):
        slp.parse_target("127.0.0.1")
