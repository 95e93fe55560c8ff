"""Probes that judge the platform as a whole, through its API and the run's Prometheus, on any
target (local processes or Kubernetes):

- :func:`promql_within`: a PromQL expression's every series within bounds (an SLI, a count of
  replicas up, a queue depth) -- the check a hypothesis needs beyond "the API answers";
- :func:`no_server_allocated_twice`: no game server is held by two Active sessions, and every
  Allocated server is held by exactly the session it names -- what a split brain (two
  controllers both re-placing sessions, a frozen leader resuming) would break first.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from typing import Any

from harness.chaos import _target
from harness.chaos._target import ActivityFailed
from harness.drivers.platform_api import PlatformApi
from harness.drivers.prometheus import PrometheusClient
from harness.util.errors import DriverError

__all__ = ["no_server_allocated_twice", "promql_within"]

log = logging.getLogger(__name__)

POLL_S = 0.5
MAX_WITHIN_S = 300.0


def promql_within(
    target_file: str = "",
    query: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    within_s: float = 0.0,
) -> bool:
    """True when ``query`` answers at least one series and every value is within
    ``[minimum, maximum]`` (either bound may be left out), now or at some poll within
    ``within_s`` seconds. No series (a misspelt metric, a target not scraped) is False."""
    if not query.strip():
        raise ActivityFailed("promql_within needs a query")
    if minimum is None and maximum is None:
        raise ActivityFailed(f"promql_within({query!r}) needs a minimum, a maximum or both")
    if within_s:  # 0: judge once, now
        _target.check_within("within_s", within_s, MAX_WITHIN_S)
    endpoints = _target.load(target_file)
    deadline = time.monotonic() + within_s
    with PrometheusClient(endpoints.prometheus_url, timeout_s=5.0) as prom:
        while True:
            try:
                values = [v for _, v in prom.instant(query, time.time())]
            except DriverError as exc:
                raise ActivityFailed(f"Prometheus refused {query!r}: {exc}") from exc
            wrong = [v for v in values if not _within(v, minimum, maximum)]
            if values and not wrong:
                return True
            if time.monotonic() >= deadline:
                what = f"values {wrong}" if values else "no series"
                log.warning(
                    "%s: %s, wanted within [%s, %s]", query, what, _bound(minimum), _bound(maximum)
                )
                return False
            time.sleep(POLL_S)


def _within(value: float, minimum: float | None, maximum: float | None) -> bool:
    if math.isnan(value):
        return False
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def _bound(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def no_server_allocated_twice(target_file: str = "") -> bool:
    """True when no game server is held by two Active sessions and every Allocated server
    names an Active session that names it back (read as the admin, every page)."""
    endpoints = _target.load(target_file)
    try:
        admin = PlatformApi(endpoints.api_url, token=endpoints.admin_token())
        sessions = admin.sessions("Active")
        servers = _target.list_servers(endpoints)
    except DriverError as exc:
        raise ActivityFailed(f"listing sessions and servers failed: {exc}") from exc
    problems = double_allocations(sessions, servers)
    for problem in problems:
        log.warning("double allocation: %s", problem)
    return not problems


def double_allocations(sessions: list[dict[str, Any]], servers: list[dict[str, Any]]) -> list[str]:
    """What breaks "one server, one session" in these listings (empty: nothing)."""
    problems = []
    held = Counter(s["server_id"] for s in sessions)
    problems += [f"server {sid} held by {n} Active sessions" for sid, n in held.items() if n > 1]
    by_id = {s["id"]: s for s in sessions}
    for server in servers:
        if server.get("state") != "Allocated":
            continue
        session = by_id.get(server.get("session") or "")
        if session is None:
            problems.append(
                f"server {server['id']} Allocated to {server.get('session')}, "
                "which is not an Active session"
            )
        elif session["server_id"] != server["id"]:
            problems.append(
                f"server {server['id']} Allocated to session {session['id']}, "
                f"which is on server {session['server_id']}"
            )
    return problems
