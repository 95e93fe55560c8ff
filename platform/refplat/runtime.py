"""Process plumbing shared by every subcommand: logging, signals, the HTTP listener."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import uvloop
from aiohttp import web

log = logging.getLogger(__name__)

HTTP_SHUTDOWN_TIMEOUT_S = 0.5


@dataclass(frozen=True)
class HostPort:
    """A ``HOST:PORT`` pair from the command line."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HostPort:
        """Parse ``HOST:PORT``; raise ValueError naming the bad text."""
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT, got {text!r}")
        return cls(host=host.strip("[]"), port=int(port))


def configure_logging(*, process: str, verbose: bool = False) -> None:
    """Plain log lines on stderr, naming the process."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format=f"%(asctime)s %(levelname)s {process} %(name)s: %(message)s",
    )


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run ``main(stop)`` in a fresh uvloop loop; SIGTERM and SIGINT set ``stop``.

    uvloop (libuv) runs the same asyncio code with less CPU: an api replica spent 1.38 ms of
    CPU per allocate-and-end cycle on it against 1.60 ms on the default loop, 617 against 543
    allocations/s (``benchmarks/refplat_perf.py --allocation``, 2 cores, hiredis installed).
    ``REFPLAT_ASYNCIO_LOOP=asyncio`` selects the default loop (to compare, or to rule uvloop
    out when something misbehaves).
    """

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await main(stop)

    default = os.environ.get("REFPLAT_ASYNCIO_LOOP", "uvloop") == "asyncio"
    with asyncio.Runner(loop_factory=None if default else uvloop.new_event_loop) as loop_runner:
        loop_runner.run(runner())
    log.info("stopped")
    return 0


@contextlib.asynccontextmanager
async def serving(app: web.Application, listen: HostPort) -> AsyncIterator[web.AppRunner]:
    """Serve ``app`` on ``listen`` for the duration of the block."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, listen.host, listen.port)
        await site.start()
        log.info("HTTP listening on %s:%d", listen.host, listen.port)
        yield runner
    finally:
        await runner.cleanup()


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; return True when ``stop`` was set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


async def run_until_stopped(
    stop: asyncio.Event, *loops: Callable[[asyncio.Event], Coroutine[Any, Any, None]]
) -> None:
    """Run each ``loop(stop)`` as a task until ``stop`` is set, then cancel and await them all."""
    tasks = [asyncio.create_task(loop(stop)) for loop in loops]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
