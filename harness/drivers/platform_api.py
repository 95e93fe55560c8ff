"""Client of the platform's HTTP API (refplat's, or any platform that speaks it)."""

from __future__ import annotations

import time
import urllib.parse
from typing import Any

from harness.util.errors import DriverError
from harness.util.http import Response, request

TIMEOUT_S = 5.0
SEED_RETRY_S = 30.0  # how long a seeding call retries a 503 or a 429
UNAVAILABLE_RETRY_S = 0.25
RATE_LIMITED_RETRY_S = 1.0
PAGE_LIMIT = 500  # the API's largest page
MAX_PAGES = 1000  # 500,000 objects: a bound on every listing loop


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
        retry_s: float = 0.0,
    ) -> Any:
        deadline = time.monotonic() + retry_s
        while True:
            resp = request(
                method,
                f"{self.base_url}{path}",
                timeout_s=TIMEOUT_S,
                token=self.token,
                payload=payload,
                headers=headers,
            )
            # 503: no replica in rotation yet (the load balancer's first health checks);
            # 429: the token's rate limit (refplat answers Retry-After: 1).
            if resp.status not in (429, 503) or time.monotonic() >= deadline:
                break
            time.sleep(RATE_LIMITED_RETRY_S if resp.status == 429 else UNAVAILABLE_RETRY_S)
        if resp.status not in ok:
            raise DriverError(f"{method} {path} on {self.base_url} answered {_describe(resp)}.")
        return resp.json()

    def create_tenant(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", "/v1/tenants", {"name": name}, retry_s=SEED_RETRY_S
        )
        return result

    def create_server(self, *, region: str = "local") -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", "/v1/servers", {"region": region}, retry_s=SEED_RETRY_S
        )
        return result

    def servers(self, state: str = "") -> list[dict[str, Any]]:
        """Every server (in ``state``), all pages."""
        return self._all_pages("/v1/servers", state)

    def _all_pages(self, path: str, state: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            query = {"limit": str(PAGE_LIMIT)}
            if state:
                query["state"] = state
            if cursor:
                query["cursor"] = cursor
            page = self._call("GET", f"{path}?{urllib.parse.urlencode(query)}")
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items
        raise DriverError(f"GET {path} returned more than {MAX_PAGES} pages; stopped reading.")

    def allocate(self, *, region: str = "local", key: str = "") -> dict[str, Any]:
        headers = {"Idempotency-Key": key} if key else None
        result: dict[str, Any] = self._call(
            "POST", "/v1/sessions", {"region": region}, headers=headers
        )
        return result

    def sessions(self, state: str = "") -> list[dict[str, Any]]:
        """Every session (in ``state``), all pages."""
        return self._all_pages("/v1/sessions", state)

    def session(self, session_id: str) -> dict[str, Any] | None:
        """The session, or None when there is none (404)."""
        return self._get_or_none(f"/v1/sessions/{session_id}")

    def server(self, server_id: str) -> dict[str, Any] | None:
        """The game server, or None when there is none (404)."""
        return self._get_or_none(f"/v1/servers/{server_id}")

    def _get_or_none(self, path: str) -> dict[str, Any] | None:
        resp = request("GET", f"{self.base_url}{path}", timeout_s=TIMEOUT_S, token=self.token)
        if resp.status == 404:
            return None
        if not resp.ok:
            raise DriverError(f"GET {path} answered {_describe(resp)}.")
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
            time.sleep(0.2 if count <= PAGE_LIMIT else 1.0)  # a full listing is dearer
        raise DriverError(
            f"Only {len(placed)} of {count} game servers became Ready within {timeout_s:g} s; "
            "check the controller and node-agent logs of the run."
        )


def _describe(resp: Response) -> str:
    if resp.status == 0:
        return f"nothing ({resp.error})"
    return f"HTTP {resp.status}: {resp.body[:200].decode(errors='replace')}"
