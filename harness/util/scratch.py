"""Throwaway local services for tests and benchmarks: a redis-server, and stopping a child."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from harness.util.net import free_port, wait_for_port

READY_TIMEOUT_S = 10.0


def stop_process(proc: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> None:
    """SIGTERM ``proc`` and reap it; SIGKILL it when it has not exited within ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout_s)


@contextlib.contextmanager
def scratch_redis(directory: Path, *extra: str) -> Iterator[str]:
    """An empty redis-server on a free loopback port, without persistence; yields its URL.

    ``directory`` is its working directory (created when missing); ``extra`` are more
    redis-server arguments. The server is stopped on every path.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; run scripts/setup.sh (make does)")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(directory), *extra]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port("127.0.0.1", port, timeout_s=READY_TIMEOUT_S, what="redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)
