"""Tenant API load: allocate sessions, list and get servers, save world files, end sessions;
and one operator creating and deleting game servers.

Runs under the harness (which passes every parameter) and with plain upstream Locust against a
target brought up with ``harness up``:

    locust -f loadtests/tenant.py --headless -u 4 -r 2 -t 30s

With ``--shape ramp --shape-servers N`` (loadtests/_shapes.py) only :class:`SessionHolderUser`
runs: each holds one allocated game server, so the shape ramps to N allocated servers::

    locust -f loadtests/tenant.py --headless --shape ramp --shape-servers 10000 \
        --shape-ramp-s 120 -t 5m

The target is found through ``--harness-target-file`` (default: ``$HARNESS_TARGET_FILE`` or
``.harness/target.json``); ``--host`` defaults to the target's API URL.
"""

from __future__ import annotations

import uuid
from typing import Any

import _harness_stats  # noqa: F401  (registers --harness-stats-file)
import _target  # registers --harness-target-file, --tenant-token-file
from _shapes import HarnessShape  # noqa: F401  (registers --shape; Locust finds it here)
from locust import FastHttpUser, between, events, task

HOLD_CHECK_S = 10.0  # a holder looks at its session this often (10,000 holders: 1,000/s)
RETRY_S = 1.0  # and tries again this soon when it holds none

WORLD_CHUNK = bytes(4096)  # one save of a world region
ADMIN_REGION = "churn"  # the operator's servers live here, apart from the tenants' sessions


@events.init.add_listener
def _configure(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:  # imported by a test, not started by Locust's CLI
        return
    target = _target.read(options)
    environment.tenant_token = _target.tenant_token(options, target)
    if not environment.host:
        environment.host = target["api_url"]


def allocate(user: Any, name: str, *, busy_fails: bool) -> str | None:
    """Allocate a session as ``user`` (with a fresh idempotency key); its id, or None. A 409
    (every server busy) is a failure only when ``busy_fails``."""
    with user.client.post(
        "/v1/sessions",
        json={"region": "local"},
        headers={**user.headers, "Idempotency-Key": str(uuid.uuid4())},
        name=name,
        catch_response=True,
    ) as resp:
        if resp.status_code in (200, 201):
            resp.success()
            return str(resp.json()["id"])
        if resp.status_code == 409 and not busy_fails:
            resp.success()
        elif resp.status_code == 409:
            resp.failure("allocate: no free game server (409)")
        else:
            resp.failure(f"allocate: HTTP {resp.status_code}")
    return None


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
        # Every server busy (409) is capacity, not an error of the platform.
        self.session_id = allocate(self, "POST /v1/sessions", busy_fails=False)

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


class SessionHolderUser(FastHttpUser):
    """A tenant holding one game server: allocates a session, keeps it, allocates again when it
    ends (expired, server lost). Only runs with ``--shape-servers`` (loadtests/_shapes.py): its
    weight of 0 keeps it out of every other run."""

    holds_server = True
    weight = 0

    def wait_time(self) -> float:
        return RETRY_S if self.session_id is None else HOLD_CHECK_S

    def on_start(self) -> None:
        token = getattr(self.environment, "tenant_token", "")
        # No idle connection between checks: 10,000 holders would hold 10,000 connections
        # open to the load balancer (HAProxy's maxconn is 4096 locally).
        self.headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
        self.session_id: str | None = None
        self.allocate()

    def allocate(self) -> None:
        # A 409 counts: a servers ramp that finds no free server has not reached its target.
        self.session_id = allocate(self, "POST /v1/sessions (hold)", busy_fails=True)

    @task
    def hold(self) -> None:
        if self.session_id is None:
            self.allocate()
            return
        with self.client.get(
            f"/v1/sessions/{self.session_id}",
            headers=self.headers,
            name="GET /v1/sessions/{id} (hold)",
            catch_response=True,
        ) as resp:
            if resp.status_code == 200 and resp.json().get("state") in ("Pending", "Active"):
                resp.success()
            elif resp.status_code in (200, 404):
                self.session_id = None  # ended meanwhile: allocate another on the next turn
                resp.success()
            else:
                resp.failure(f"hold: HTTP {resp.status_code}")

    def on_stop(self) -> None:
        if self.session_id is not None:
            self.client.delete(
                f"/v1/sessions/{self.session_id}",
                headers=self.headers,
                name="DELETE /v1/sessions/{id} (hold)",
            )
            self.session_id = None
