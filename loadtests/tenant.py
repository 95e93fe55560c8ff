"""Tenant API load: allocate sessions, list and get servers, save world files, end sessions;
and one operator creating and deleting game servers.

Runs under the harness (which passes every parameter) and with plain upstream Locust against a
target brought up with ``harness up``:

    locust -f loadtests/tenant.py --headless -u 4 -r 2 -t 30s

The target is found through ``--harness-target-file`` (default: ``$HARNESS_TARGET_FILE`` or
``.harness/target.json``); ``--host`` defaults to the target's API URL.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import _harness_stats  # noqa: F401  (registers --harness-stats-file)
from _shapes import HarnessShape  # noqa: F401  (registers --shape; Locust finds it here)
from locust import FastHttpUser, between, events, task

DEFAULT_TARGET_FILE = os.environ.get("HARNESS_TARGET_FILE", ".harness/target.json")
WORLD_CHUNK = bytes(4096)  # one save of a world region
ADMIN_REGION = "churn"  # the operator's servers live here, apart from the tenants' sessions


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--harness-target-file",
        default=DEFAULT_TARGET_FILE,
        help="target.json written by `harness up` or a harness run",
    )
    parser.add_argument(
        "--tenant-token-file",
        default="",
        help="file holding the tenant's API token (default: the one the target file names)",
    )


def _target(environment: Any) -> dict[str, Any]:
    path = Path(environment.parsed_options.harness_target_file)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(
            f"{path}: no target connection file; run `harness up` first or pass "
            "--harness-target-file"
        ) from None
    return data


@events.init.add_listener
def _configure(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:  # imported by a test, not started by Locust's CLI
        return
    target = _target(environment)
    token_file = options.tenant_token_file or target.get("tenant_token_file", "")
    if not token_file:
        raise SystemExit("the target has no seeded tenant; pass --tenant-token-file")
    environment.tenant_token = Path(token_file).read_text().strip()
    if not environment.host:
        environment.host = target["api_url"]


class TenantUser(FastHttpUser):
    """One tenant's automation: holds at most one session at a time."""

    wait_time = between(0.2, 0.6)

    def on_start(self) -> None:
        token = getattr(self.environment, "tenant_token", "")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session_id: str | None = None

    @task(3)
    def allocate_session(self) -> None:
        if self.session_id is not None:
            self.end_session()
            return
        key = str(uuid.uuid4())
        with self.client.post(
            "/v1/sessions",
            json={"region": "local"},
            headers={**self.headers, "Idempotency-Key": key},
            name="POST /v1/sessions",
            catch_response=True,
        ) as resp:
            if resp.status_code in (200, 201):
                self.session_id = resp.json()["id"]
                resp.success()
            elif resp.status_code == 409:
                # Every server is busy: capacity, not an error of the platform.
                resp.success()
            else:
                resp.failure(f"allocate: HTTP {resp.status_code}")

    @task(2)
    def list_servers(self) -> None:
        self.client.get("/v1/servers", headers=self.headers, name="GET /v1/servers")

    @task(2)
    def get_server(self) -> None:
        with self.client.get(
            "/v1/servers?state=Ready",
            headers=self.headers,
            name="GET /v1/servers?state",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"list: HTTP {resp.status_code}")
                return
            items = resp.json().get("items", [])
        if items:
            self.client.get(
                f"/v1/servers/{items[0]['id']}", headers=self.headers, name="GET /v1/servers/{id}"
            )

    @task(1)
    def write_world_file(self) -> None:
        """Save a piece of the session's world through the API (exact quota accounting)."""
        if self.session_id is None:
            return
        self.saves = getattr(self, "saves", 0) + 1
        with self.client.put(
            f"/v1/sessions/{self.session_id}/files/world/region-{self.saves % 8}.dat",
            data=WORLD_CHUNK,
            headers={**self.headers, "Content-Type": "application/octet-stream"},
            name="PUT /v1/sessions/{id}/files/{path}",
            catch_response=True,
        ) as resp:
            if resp.status_code in (200, 201, 507):
                resp.success()  # 507: the session's disk quota is full, the tenant's own limit
            elif resp.status_code == 404:
                self.session_id = None  # the session ended meanwhile (expired, evicted)
                resp.success()
            else:
                resp.failure(f"write: HTTP {resp.status_code}")

    @task(1)
    def end_session(self) -> None:
        if self.session_id is None:
            return
        self.client.delete(
            f"/v1/sessions/{self.session_id}", headers=self.headers, name="DELETE /v1/sessions/{id}"
        )
        self.session_id = None

    def on_stop(self) -> None:
        self.end_session()


class ServerAdminUser(FastHttpUser):
    """An operator creating game servers and deleting them again (in their own region, so the
    tenant users never hold a session on one of them)."""

    fixed_count = 1
    wait_time = between(1.0, 2.0)

    def on_start(self) -> None:
        token = getattr(self.environment, "tenant_token", "")
        self.headers = {"Authorization": f"Bearer {token}"}

    @task
    def create_and_delete_server(self) -> None:
        with self.client.post(
            "/v1/servers",
            json={"region": ADMIN_REGION},
            headers=self.headers,
            name="POST /v1/servers",
            catch_response=True,
        ) as resp:
            if resp.status_code != 201:
                resp.failure(f"create: HTTP {resp.status_code}")
                return
            server_id = resp.json()["id"]
        self.client.delete(
            f"/v1/servers/{server_id}", headers=self.headers, name="DELETE /v1/servers/{id}"
        )
