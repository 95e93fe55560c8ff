"""A tiny JSON-over-HTTP client on the standard library, every call with a timeout.

Used where pulling in a client library would be heavier than the call (readiness checks,
chaos probes that must import fast). Errors come back as values, never as exceptions.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Response:
    status: int  # 0 when no HTTP answer came at all
    body: bytes
    error: str = ""

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def request(
    method: str,
    url: str,
    *,
    timeout_s: float,
    token: str = "",
    payload: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Send one request; connection failures give ``status=0`` and the reason in ``error``."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return Response(resp.status, resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        exc.close()
        return Response(exc.code, body, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return Response(0, b"", str(getattr(exc, "reason", exc)))


def wait_http_ok(url: str, *, timeout_s: float, what: str, poll_s: float = 0.1) -> None:
    """Wait until ``url`` answers 2xx; raise TimeoutError naming ``what`` and the last answer."""
    deadline = time.monotonic() + timeout_s
    last = Response(0, b"", "no attempt")
    while time.monotonic() < deadline:
        last = request("GET", url, timeout_s=min(2.0, timeout_s))
        if last.ok:
            return
        time.sleep(poll_s)
    raise TimeoutError(
        f"{what} was not ready at {url} within {timeout_s:g} s "
        f"(last answer: {last.status or last.error})"
    )
