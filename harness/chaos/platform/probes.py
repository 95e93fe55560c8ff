"""Probes that judge the platform as a whole, through its API and the run's Prometheus, on any
target (local processes or Kubernetes):

- :func:`promql_within`: a PromQL expression's every series within bounds (an SLI, a count of
  replicas up, a queue depth) -- the check a hypothesis needs beyond "the API answers";
- :func:`no_server_allocated_twice`: no game server is held by two Active sessions, and every
  Allocated server is held by exactly the session it names -- what a split brain (two
  controllers both re-placing sessions, a frozen leader resuming) would break first;
- :func:`audit_chain_valid`: ``refplat audit verify`` finds every record of the platform's
  sealed audit log intact and chained (none altered, removed, inserted or reordered) in the
  run's Redis -- what a lost acknowledged write or a forked history after a failover breaks.
  It needs a target that writes the log with a key the run holds (capability ``audit``;
  ``topology.audit: true`` in a local profile).
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import time
from collections import Counter
from typing import Any

from harness.chaos import _target
from harness.chaos._target import ActivityFailed
from harness.drivers.platform_api import PlatformApi
from harness.drivers.prometheus import PrometheusClient
from harness.model import Endpoints
from harness.util.errors import DriverError

__all__ = ["audit_chain_valid", "no_server_allocated_twice", "promql_within"]

log = logging.getLogger(__name__)

POLL_S = 0.5
MAX_WITHIN_S = 300.0
MAX_VERIFY_S = 600.0
# How `refplat audit verify` says the log is not intact (exit 1 is also any uncaught error's).
NOT_INTACT = "audit log NOT intact"


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
    names an Active session that names it back (read as the admin, every page).

    The two listings are not one snapshot: under load a session allocated between them names
    a server the session listing did not show. So each server the listings flag is read again
    with its sessions in between, and only a breach that holds while the server stays the
    same is reported."""
    endpoints = _target.load(target_file)
    try:
        admin = PlatformApi(endpoints.api_url, token=endpoints.admin_token())
        sessions = admin.sessions("Active")
        servers = _target.list_servers(endpoints)
        problems = [
            problem
            for server_id, session_ids in suspects(sessions, servers).items()
            for problem in read_again(admin, server_id, session_ids)
        ]
    except DriverError as exc:
        raise ActivityFailed(f"listing sessions and servers failed: {exc}") from exc
    for problem in problems:
        log.warning("double allocation: %s", problem)
    return not problems


def suspects(sessions: list[dict[str, Any]], servers: list[dict[str, Any]]) -> dict[str, set[str]]:
    """The servers :func:`double_allocations` flags in these listings, with the sessions
    involved (those naming the server, and the one it names)."""
    involved: dict[str, set[str]] = {sid: set() for sid, _ in _breaches(sessions, servers)}
    for session in sessions:
        if session["server_id"] in involved:
            involved[session["server_id"]].add(session["id"])
    for server in servers:
        if server["id"] in involved and server.get("session"):
            involved[server["id"]].add(server["session"])
    return involved


def read_again(admin: PlatformApi, server_id: str, session_ids: set[str]) -> list[str]:
    """The breaches at ``server_id`` that hold now: its sessions read between two reads of
    the server, which must agree (else a write raced the check, and the server is fine)."""
    before = admin.server(server_id)
    found = [admin.session(sid) for sid in sorted(session_ids)]
    active = [s for s in found if s is not None and s.get("state") == "Active"]
    after = admin.server(server_id)
    if before != after:
        log.info("server %s changed while it was read again; the listings raced it", server_id)
        return []
    return double_allocations(active, [after] if after is not None else [])


def double_allocations(sessions: list[dict[str, Any]], servers: list[dict[str, Any]]) -> list[str]:
    """What breaks "one server, one session" in these listings (empty: nothing)."""
    return [message for _, message in _breaches(sessions, servers)]


def _breaches(
    sessions: list[dict[str, Any]], servers: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """Each breach of "one server, one session": the server's id and what is wrong."""
    held = Counter(s["server_id"] for s in sessions)
    found = [(sid, f"server {sid} held by {n} Active sessions") for sid, n in held.items() if n > 1]
    by_id = {s["id"]: s for s in sessions}
    for server in servers:
        sid, name = server["id"], server.get("session")
        session = by_id.get(name or "")
        if server.get("state") != "Allocated" or (session and session["server_id"] == sid):
            continue
        if session is None:
            found.append((sid, f"server {sid} Allocated to {name}, which is not an Active session"))
        else:
            on = session["server_id"]
            found.append(
                (sid, f"server {sid} Allocated to session {name}, which is on server {on}")
            )
    return found


def audit_chain_valid(target_file: str = "", timeout_s: float = 60.0) -> bool:
    """True when ``refplat audit verify`` (with the run's audit key, against the run's Redis:
    through its Sentinels when it has them, so the primary after a failover) finds the audit
    log intact; False when it names problems, each logged as a warning. ActivityFailed when the
    run writes no audit log or the verifier cannot run to a verdict within ``timeout_s``."""
    _target.check_within("timeout_s", timeout_s, MAX_VERIFY_S)
    endpoints = _target.load(target_file)
    argv = [*verify_command(endpoints), "--key-file", _audit_key_file(endpoints)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise ActivityFailed(
            f"refplat audit verify found no verdict within {timeout_s:g} s (target "
            f"{endpoints.run_id}); raise timeout_s if the log is that long"
        ) from exc
    if done.returncode == 0:
        log.info("%s", done.stdout.strip())
        return True
    if done.returncode == 1 and NOT_INTACT in done.stderr:
        for line in done.stdout.splitlines():
            log.warning("audit log of target %s: %s", endpoints.run_id, line)
        return False
    raise ActivityFailed(
        f"refplat audit verify failed (exit {done.returncode}) on target {endpoints.run_id}: "
        f"{(done.stderr.strip() or done.stdout.strip())[-2000:]}"
    )


def verify_command(endpoints: Endpoints) -> list[str]:
    """``refplat audit verify`` aimed at the run's Redis primary, without the key file."""
    argv = [sys.executable, "-m", "refplat", "audit", "verify"]
    sentinels = [s for s in endpoints.extra.get("redis_sentinels", "").split(",") if s]
    if not sentinels:
        return [*argv, "--redis-url", endpoints.redis_url]
    for where in sentinels:
        argv += ["--redis-sentinel", where]
    return [*argv, "--redis-master", endpoints.extra["redis_master"]]


def _audit_key_file(endpoints: Endpoints) -> str:
    key_file = endpoints.extra.get("audit_key_file", "")
    if not key_file:
        raise ActivityFailed(
            f"target {endpoints.run_id} holds no audit key, so its platform writes no audit "
            "log to verify; set topology: {audit: true} in the profile (experiments that "
            "check the log require the audit capability)"
        )
    return key_file
