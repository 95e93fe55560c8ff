"""Probes against the ``local`` target: the API through its load balancer, game servers, leader."""

from __future__ import annotations

import logging
import time
from typing import Any

from mcstatus import JavaServer

from harness.chaos import _target
from harness.drivers.process import alive
from harness.util.errors import DriverError
from harness.util.http import request

__all__ = [
    "allocated_servers_reachable",
    "api_healthy",
    "controller_leader",
    "controller_leader_count",
    "servers_ready_elsewhere",
]

PLACED = ("Ready", "Allocated")
SETTLED = (*PLACED, "Stopped", "Shutdown", "Error")

log = logging.getLogger(__name__)


def api_healthy(target_file: str = "", timeout_s: float = 2.0) -> bool:
    """True when the API answers 200 on ``/healthz`` and ``/readyz`` through the load balancer."""
    endpoints = _target.load(target_file)
    for path in ("/healthz", "/readyz"):
        resp = request("GET", f"{endpoints.api_url}{path}", timeout_s=timeout_s)
        if not resp.ok:
            log.warning("API %s answered %s", path, resp.status or resp.error)
            return False
    return True


def allocated_servers_reachable(target_file: str = "", timeout_s: float = 2.0) -> bool:
    """True when every Allocated game server answers a Server List Ping status and ping.

    False when none is allocated: a hypothesis about allocated servers needs at least one.
    """
    endpoints = _target.load(target_file)
    resp = request(
        "GET",
        f"{endpoints.api_url}/v1/servers?state=Allocated",
        timeout_s=timeout_s,
        token=endpoints.admin_token(),
    )
    if not resp.ok:
        log.warning("listing allocated servers answered %s", resp.status or resp.error)
        return False
    servers: list[dict[str, Any]] = resp.json().get("items", [])
    if not servers:
        log.warning("no game server is allocated; nothing to check")
        return False
    unreachable = [s["id"] for s in servers if not _pingable(s, timeout_s)]
    if unreachable:
        log.warning("unreachable allocated servers: %s", ", ".join(unreachable))
    return not unreachable


def servers_ready_elsewhere(
    target_file: str = "", within_s: float = 25.0, fault_name: str = "node-agent-kill"
) -> bool:
    """True when, within ``within_s``, every game server is settled and every Ready or
    Allocated one is on a node whose agent is alive (a node agent's name is its node's).

    After a node agent died, this waits for the controller to find the node lost (its servers
    leave it) and for its servers to be Ready on the other nodes; both instants, counted from
    the last ``fault_name`` injection, are recorded on the timeline as ``recovered``.
    """
    endpoints = _target.load(target_file)
    dead = {p.name for p in endpoints.by_role("agent") if not alive(p.pid, None)}
    deadline = time.monotonic() + within_s
    detected_at: float | None = None
    servers: list[dict[str, Any]] = []
    while True:
        servers = _all_servers(endpoints)
        on_dead = [s for s in servers if s.get("node") in dead and s["state"] in PLACED]
        if dead and not on_dead and detected_at is None:
            detected_at = time.time()
        if servers and not on_dead and all(s["state"] in SETTLED for s in servers):
            break
        if time.monotonic() >= deadline:
            log.warning(
                "not every server is Ready on a live node after %g s: %s",
                within_s,
                ", ".join(f"{s['id']} {s['state']} on {s.get('node')}" for s in servers),
            )
            return False
        time.sleep(0.25)
    if dead:
        _record_recovery(endpoints, fault_name, dead, detected_at or time.time())
    return True


def _all_servers(endpoints: Any) -> list[dict[str, Any]]:
    """Every game server (all pages); empty when the API does not answer (polled again)."""
    try:
        return _target.list_servers(endpoints)
    except DriverError as exc:
        log.warning("listing servers failed: %s", exc)
        return []


def _record_recovery(endpoints: Any, fault_name: str, dead: set[str], detected_at: float) -> None:
    timeline = _target.timeline(endpoints)
    injected = [
        e["at"]
        for e in timeline.faults()
        if e.get("name") == fault_name and e.get("event") == "injected"
    ]
    if not injected:
        return
    now = time.time()
    timeline.append(
        {
            "kind": "fault",
            "name": fault_name,
            "event": "recovered",
            "target": ", ".join(sorted(dead)),
            "detail": f"node lost detected after {detected_at - injected[-1]:.2f} s, servers "
            f"Ready elsewhere after {now - injected[-1]:.2f} s",
        }
    )


def controller_leader(target_file: str = "") -> str:
    """The name of the controller replica that leads now, or an empty string."""
    endpoints = _target.load(target_file)
    leaders = [p.name for p, s in _target.controller_statuses(endpoints) if s.get("leader")]
    return leaders[0] if len(leaders) == 1 else ""


def controller_leader_count(target_file: str = "") -> int:
    """How many controller replicas claim to lead now (a split brain shows as 2 or more)."""
    endpoints = _target.load(target_file)
    return sum(1 for _, s in _target.controller_statuses(endpoints) if s.get("leader"))


def _pingable(server: dict[str, Any], timeout_s: float) -> bool:
    try:
        mc = JavaServer(server["address"], int(server["port"]), timeout=timeout_s)
        mc.status(tries=1)
        mc.ping(tries=1)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("server %s: %s", server.get("id"), exc)
        return False
    return True
