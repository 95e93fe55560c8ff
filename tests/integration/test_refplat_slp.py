"""A refplat game-server listener answers the real mcstatus client and rejects bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mcstatus import JavaServer

from refplat.slp import StatusInfo, bound_port, encode_string, encode_varint, frame, start_listener

pytestmark = pytest.mark.integration

STATUS = StatusInfo(
    version_name="1.21", protocol=767, players_online=1, players_max=10, description="hello"
)
HANDSHAKE = frame(0x00, encode_varint(767) + encode_string("127.0.0.1") + b"\x63\xdd" + b"\x01")


def with_listener(body: Callable[[int], Awaitable[Any]], *, read_timeout_s: float = 2.0) -> Any:
    """Run ``body(port)`` against a fresh listener, closing it afterwards."""

    async def run() -> Any:
        server = await start_listener(
            host="127.0.0.1", port=0, status=lambda: STATUS, read_timeout_s=read_timeout_s
        )
        try:
            return await body(bound_port(server))
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(run())


async def exchange(port: int, chunks: list[bytes]) -> bytes:
    """Send ``chunks`` one by one, then read until the server closes (at most 3 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.01)
        return await asyncio.wait_for(reader.read(), timeout=3)
    finally:
        writer.close()
        await writer.wait_closed()


def test_mcstatus_status_reports_the_version_players_and_description() -> None:
    async def body(port: int) -> Any:
        return await asyncio.to_thread(JavaServer("127.0.0.1", port, timeout=2).status, tries=1)

    status = with_listener(body)

    assert ("1.21", 767) == (status.version.name, status.version.protocol)
    assert (1, 10) == (status.players.online, status.players.max)
    assert "hello" == status.motd.to_plain()


def test_mcstatus_ping_gets_its_pong() -> None:
    async def body(port: int) -> Any:
        return await asyncio.to_thread(JavaServer("127.0.0.1", port, timeout=2).ping, tries=1)

    assert with_listener(body) >= 0


def test_mcstatus_async_status_and_ping_work_too() -> None:
    async def body(port: int) -> tuple[Any, float]:
        server = JavaServer("127.0.0.1", port, timeout=2)
        return await server.async_status(tries=1), await server.async_ping(tries=1)

    status, latency = with_listener(body)

    assert (767, latency >= 0) == (status.version.protocol, True)


def test_a_handshake_split_into_single_bytes_still_gets_a_status_reply() -> None:
    request = HANDSHAKE + frame(0x00) + frame(0x01, (42).to_bytes(8, "big"))

    reply = with_listener(lambda port: exchange(port, [bytes([b]) for b in request]))

    assert reply.endswith(frame(0x01, (42).to_bytes(8, "big")))
    assert b'"protocol": 767' in reply


def test_a_varint_with_a_sixth_byte_closes_the_connection_without_reply() -> None:
    reply = with_listener(lambda port: exchange(port, [bytes.fromhex("ffffffffff01")]))

    assert b"" == reply


def test_a_login_handshake_is_closed_without_reply() -> None:
    login = frame(0x00, encode_varint(767) + encode_string("x") + b"\x63\xdd" + b"\x02")

    assert b"" == with_listener(lambda port: exchange(port, [login]))


def test_an_idle_connection_is_closed_after_the_read_timeout() -> None:
    async def body(port: int) -> tuple[bytes, float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        reply = await exchange(port, [])
        return reply, loop.time() - started

    reply, elapsed = with_listener(body, read_timeout_s=0.2)

    assert (b"", True) == (reply, elapsed < 2)
