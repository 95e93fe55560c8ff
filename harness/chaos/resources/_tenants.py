"""What the resource faults share: a throwaway tenant, raw HTTP with headers, their results.

A fault's result (counts by status, quota figures...) is saved to
``<run_dir>/chaos-results/<fault>.json`` when it ends, so the probes of the steady-state
hypothesis can judge it after the method ran (an activity's return value is not theirs to read).
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.chaos._target import ActivityFailed
from harness.model import Endpoints
from harness.util.http import request

TIMEOUT_S = 5.0
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(?P<value>\S+)")


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no answer (connection refused or reset, timeout)
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


class Connection:
    """One keep-alive HTTP connection to the API's load balancer, reopened after an error."""

    def __init__(self, api_url: str, token: str, *, timeout_s: float = TIMEOUT_S) -> None:
        url = urllib.parse.urlsplit(api_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._token = token
        self._timeout_s = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def send(self, method: str, path: str, body: bytes | None = None) -> Answer:
        headers = {"Authorization": f"Bearer {self._token}"}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout_s
                )
            self._conn.request(method, path, body=body, headers=headers)
            resp = self._conn.getresponse()
            data = resp.read()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        except (OSError, http.client.HTTPException):
            self.close()
            return Answer(0, {}, b"")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def new_tenant(endpoints: Endpoints, prefix: str) -> tuple[str, str]:
    """Create a tenant named ``<prefix>-<random>`` with the admin token; return (id, token)."""
    name = f"{prefix}-{secrets.token_hex(3)}"
    resp = request(
        "POST",
        f"{endpoints.api_url}/v1/tenants",
        timeout_s=TIMEOUT_S,
        token=endpoints.admin_token(),
        payload={"name": name},
    )
    if not resp.ok:
        raise ActivityFailed(f"creating tenant {name} answered {resp.status or resp.error}")
    data = resp.json()
    return str(data["id"]), str(data["token"])


def call(endpoints: Endpoints, method: str, path: str, token: str, payload: Any = None) -> Any:
    """One JSON call through the load balancer; ActivityFailed unless it answers 2xx."""
    resp = request(
        method, f"{endpoints.api_url}{path}", timeout_s=TIMEOUT_S, token=token, payload=payload
    )
    if not resp.ok:
        raise ActivityFailed(f"{method} {path} answered {resp.status or resp.error}")
    return resp.json()


def wait_server_ready(endpoints: Endpoints, token: str, server_id: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    state = ""
    while time.monotonic() < deadline:
        state = call(endpoints, "GET", f"/v1/servers/{server_id}", token).get("state", "")
        if state in ("Ready", "Allocated"):
            return
        time.sleep(0.2)
    raise ActivityFailed(f"game server {server_id} was {state}, not Ready, after {timeout_s:g} s")


def results_file(endpoints: Endpoints, fault_name: str) -> Path:
    return Path(endpoints.run_dir) / "chaos-results" / f"{fault_name}.json"


def save_result(endpoints: Endpoints, fault_name: str, result: dict[str, Any]) -> None:
    path = results_file(endpoints, fault_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=True))
    tmp.replace(path)


def load_result(endpoints: Endpoints, fault_name: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(results_file(endpoints, fault_name).read_text())
    except (OSError, ValueError):
        return None
    return data


def quota_rejections(endpoints: Endpoints) -> float:
    """The sum of ``refplat_api_quota_rejections_total`` over the api replicas that answer."""
    total = 0.0
    for proc in endpoints.by_role("api"):
        resp = request("GET", f"{proc.url}/metrics", timeout_s=2.0)
        if resp.ok:
            text = resp.body.decode(errors="replace")
            total += metric_sum(text, "refplat_api_quota_rejections_total")
    return total


def metric_sum(text: str, name: str) -> float:
    """The sum of every sample of ``name`` in a Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and m["name"] == name:
            total += float(m["value"])
    return total
