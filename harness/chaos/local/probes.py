"""Probes against the ``local`` target: the API through its load balancer, game servers, leader."""

from __future__ import annotations

import logging
from typing import Any

from mcstatus import JavaServer

from harness.chaos import _target
from harness.util.http import request

__all__ = [
    "allocated_servers_reachable",
    "api_healthy",
    "controller_leader",
    "controller_leader_count",
]

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
