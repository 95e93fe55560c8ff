"""Client of the platform's HTTP API (refplat's, or any platform that speaks it)."""

from __future__ import annotations

import time
from typing import Any

from harness.util.errors import DriverError
from harness.util.http import Response, request

TIMEOUT_S = 5.0


class PlatformApi:
    """Admin and tenant calls the harness needs to seed and check a platform."""

    def __init__(self, base_url: str, *, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def as_token(self, token: str) -> PlatformApi:
        return PlatformApi(self.base_url, token=token)

    def _call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        *,
        ok: tuple[int, ...] = (200, 201, 202),
        headers: dict[str, str] | None = None,
    ) -> Any:
        resp = request(
            method,
            f"{self.base_url}{path}",
            timeout_s=TIMEOUT_S,
            token=self.token,
            payload=payload,
            headers=headers,
        )
        if resp.status not in ok:
            raise DriverError(f"{method} {path} on {self.base_url} answered {_describe(resp)}.")
        return resp.json()

    def create_tenant(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/tenants", {"name": name})
        return result

    def create_server(self, *, region: str = "local") -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/servers", {"region": region})
        return result

    def servers(self, state: str = "") -> list[dict[str, Any]]:
        query = f"?state={state}" if state else ""
        items: list[dict[str, Any]] = self._call("GET", f"/v1/servers{query}")["items"]
        return items

    def allocate(self, *, region: str = "local", key: str = "") -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else None
        result: dict[str, Any] = self._call(
            "POST", "/v1/sessions", {"region": region}, headers=headers
        )
        return result

    def sessions(self, state: str = "") -> list[dict[str, Any]]:
        query = f"?state={state}" if state else ""
        items: list[dict[str, Any]] = self._call("GET", f"/v1/sessions{query}")["items"]
        return items

    def session(self, session_id: str) -> dict[str, Any] | None:
        resp = request(
            "GET",
            f"{self.base_url}/v1/sessions/{session_id}",
            timeout_s=TIMEOUT_S,
            token=self.token,
        )
        if resp.status == 404:
            return None
        if not resp.ok:
            raise DriverError(f"GET /v1/sessions/{session_id} answered {_describe(resp)}.")
        result: dict[str, Any] = resp.json()
        return result

    def end_session(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("DELETE", f"/v1/sessions/{session_id}")
        return result

    def wait_servers_ready(self, count: int, *, timeout_s: float) -> list[dict[str, Any]]:
        """Wait until at least ``count`` servers are Ready or Allocated; return them."""
        deadline = time.monotonic() + timeout_s
        placed: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            placed = [s for s in self.servers() if s["state"] in ("Ready", "Allocated")]
            if len(placed) >= count:
                return placed
            time.sleep(0.2)
        raise DriverError(
            f"Only {len(placed)} of {count} game servers became Ready within {timeout_s:g} s; "
            "check the controller and node-agent logs of the run."
        )


def _describe(resp: Response) -> str:
    if resp.status == 0:
        return f"nothing ({resp.error})"
    return f"HTTP {resp.status}: {resp.body[:200].decode(errors='replace')}"
