"""Ports and readiness on loopback."""

from __future__ import annotations

import random
import socket
import time


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago (the kernel chose it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# Below Linux's default ephemeral range (32768-60999), from which listeners on port 0 and
# outgoing connections draw: a port chosen here now and bound only later (Locust's metrics,
# minutes after 10,000 game servers took their ports) is not taken meanwhile by one of them.
RESERVED_RANGE = (20000, 32767)


def free_port_outside_ephemeral(host: str = "127.0.0.1", *, attempts: int = 200) -> int:
    """A TCP port on ``host`` that is free now and not one the kernel hands out by itself."""
    low, high = RESERVED_RANGE
    for _ in range(attempts):
        port = random.randint(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {low}-{high} on {host} after {attempts} tries")


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Return whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, *, timeout_s: float, what: str) -> None:
    """Wait until ``host:port`` accepts connections; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not accept connections on {host}:{port} within {timeout_s:g} s")
