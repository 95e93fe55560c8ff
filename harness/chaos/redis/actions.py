"""Fault actions against the Redis of a target with Sentinels.

``kill_primary`` records its instant on the run's fault timeline before it acts, so recovery is
measured from the moment the primary died. ``restart_redis`` is its rollback: the killed Redis
comes back with its data directory as a replica of the new primary. ``allocate_sessions`` writes
sessions the platform acknowledges just before the fault; ``end_sessions`` is its rollback.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.chaos import _target
from harness.chaos._target import ActivityFailed
from harness.chaos.redis import _topology
from harness.drivers.platform_api import PlatformApi
from harness.model import Endpoints
from harness.targets._redis import await_settled, primary_address, replica_linked
from harness.targets._redis import restart_redis as _restart
from harness.util.errors import HarnessError
from harness.util.http import request

__all__ = ["allocate_sessions", "end_sessions", "kill_primary", "restart_redis"]

MAX_WAIT_S = 120.0
ALLOCATE_TIMEOUT_S = 5.0


def kill_primary(
    target_file: str = "",
    signal_name: str = "SIGKILL",
    fault_name: str = "redis-primary-kill",
    settle_timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Send ``signal_name`` to the Redis that the Sentinels report as primary.

    First waits (at most ``settle_timeout_s``) until no failover is under way: every sentinel
    names the same live primary and it streams to every running replica, so that a repeated
    injection does not hit the previous failover half done. The Sentinels then promote a replica
    (``down-after-milliseconds`` plus the election: a few seconds); refplat's clients ask them
    for the new primary on their next connection. Fails (and records nothing) when the sentinels
    do not settle in time.
    """
    _target.check_within("settle_timeout_s", settle_timeout_s, MAX_WAIT_S)
    endpoints = _target.load(target_file)
    replicas = sum(
        1 for p in _topology.redis_processes(endpoints) if _topology.running(endpoints, p)
    )
    try:
        await_settled(
            _topology.sentinels(endpoints), replicas=replicas - 1, timeout_s=settle_timeout_s
        )
    except TimeoutError as exc:
        raise ActivityFailed(f"{exc} within {settle_timeout_s:g} s; nothing killed") from exc
    proc = _topology.primary(endpoints)
    if proc is None or not _topology.running(endpoints, proc):
        raise ActivityFailed("the sentinels do not agree on a live Redis primary; nothing killed")
    try:
        signum = signal.Signals[signal_name.upper()]
    except KeyError:
        raise ActivityFailed(f"unknown signal {signal_name!r}; use e.g. SIGKILL") from None
    pid = _topology.pid_of(endpoints, proc)
    host, port = _topology.address_of(proc)
    detail = f"{signal_name} to the Redis primary {proc.name} at {host}:{port}"
    event = _target.record_fault(
        endpoints, fault_name, "injected", target=proc.name, pid=pid, detail=detail
    )
    os.kill(pid, signum)
    return {"killed": proc.name, "pid": pid, "address": f"{host}:{port}", "at": event["at"]}


def restart_redis(
    target_file: str = "", name: str = "", timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    """Start again the Redis called ``name`` (or every Redis of the target that is not running)
    with its own data directory, as a replica of the primary the Sentinels report now.

    Waits until each one's replication link to the primary is up (at most ``timeout_s``), so its
    data is whole again. A Redis that runs is left alone, so this is safe as a rollback. Returns
    what was restarted: name, new pid and the primary it follows.
    """
    _target.check_within("timeout_s", timeout_s, MAX_WAIT_S)
    endpoints = _target.load(target_file)
    stopped = [
        p
        for p in _topology.redis_processes(endpoints)
        if (p.name == name if name else True) and not _topology.running(endpoints, p)
    ]
    if name and not any(p.name == name for p in _topology.redis_processes(endpoints)):
        raise ActivityFailed(f"target {endpoints.run_id} has no Redis called {name!r}")
    sentinels = _topology.sentinels(endpoints) if endpoints.extra.get("redis_sentinels") else []
    restarted = []
    for proc in stopped:
        primary = _await_primary(sentinels, timeout_s) if sentinels else None
        as_primary = primary == _topology.address_of(proc)
        if as_primary:
            primary = None  # the sentinels have not failed over yet: it comes back as primary
        try:
            pid = _restart(
                Path(endpoints.run_dir), proc.name, replicaof=primary, primary=as_primary
            )
        except HarnessError as exc:
            raise ActivityFailed(str(exc)) from exc
        _target.timeline(endpoints).append({"kind": "restart", "name": proc.name, "pid": pid})
        if primary is not None:
            _await_link(proc.name, _topology.address_of(proc), timeout_s)
        endpoints = _with_pid(endpoints, proc.name, pid, target_file)
        where = f"{primary[0]}:{primary[1]}" if primary else ""
        restarted.append({"name": proc.name, "pid": pid, "replica_of": where})
    return restarted


def allocate_sessions(
    target_file: str = "",
    count: int = 2,
    record: str = "redis-acknowledged",
    timeout_s: float = 15.0,
) -> list[str]:
    """Allocate ``count`` sessions as the seeded tenant and add the ids the platform
    acknowledged (201) to the run's record ``record``; ``acknowledged_sessions_survive``
    checks them after the fault. Returns the new ids.

    While no game server is free (409) or Redis cannot take the write (503), each allocation
    is retried for at most ``timeout_s``: the load may hold every server for a moment.
    """
    if not 0 < count <= 20:
        raise ActivityFailed(f"count must be in 1..20, not {count}")
    _target.check_within("timeout_s", timeout_s, MAX_WAIT_S)
    endpoints = _target.load(target_file)
    ids: list[str] = []
    try:
        for _ in range(count):
            ids.append(_allocate(endpoints, timeout_s))
    finally:
        _topology.write_record(endpoints, record, [*_topology.recorded(endpoints, record), *ids])
    return ids


def _allocate(endpoints: Endpoints, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        resp = request(
            "POST",
            f"{endpoints.api_url}/v1/sessions",
            timeout_s=ALLOCATE_TIMEOUT_S,
            token=endpoints.tenant_token(),
            payload={"region": "local"},
        )
        if resp.status == 201:
            return str(resp.json()["id"])
        if resp.status not in (409, 503) or time.monotonic() > deadline:
            raise ActivityFailed(
                f"allocating a session answered {resp.status or resp.error}: {resp.body[:200]!r}"
            )
        time.sleep(0.2)


def end_sessions(target_file: str = "", record: str = "redis-acknowledged") -> list[str]:
    """End every session in the run's record ``record`` that is still Active (so its game
    server returns to the pool), then clear the record. Returns the ids ended."""
    endpoints = _target.load(target_file)
    api = PlatformApi(endpoints.api_url, token=endpoints.tenant_token())
    ended = []
    for sid in _topology.recorded(endpoints, record):
        try:
            session = api.session(sid)
            if session is not None and session.get("state") == "Active":
                api.end_session(sid)
                ended.append(sid)
        except HarnessError as exc:
            raise ActivityFailed(f"ending session {sid} failed: {exc}") from exc
    _topology.write_record(endpoints, record, [])
    return ended


def _await_primary(sentinels: list[tuple[str, int]], timeout_s: float) -> tuple[str, int]:
    deadline = time.monotonic() + timeout_s
    while (primary := primary_address(sentinels)) is None:
        if time.monotonic() > deadline:
            raise ActivityFailed(
                f"the sentinels agreed on no primary within {timeout_s:g} s; restarting a Redis "
                "now could make it a second primary, so nothing was restarted"
            )
        time.sleep(0.1)
    return primary


def _await_link(name: str, address: tuple[str, int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not replica_linked(address):
        if time.monotonic() > deadline:
            raise ActivityFailed(
                f"{name} restarted but its replication link did not come up within "
                f"{timeout_s:g} s; see its log in the run directory"
            )
        time.sleep(0.1)


def _with_pid(endpoints: Endpoints, name: str, pid: int, target_file: str) -> Endpoints:
    """Write the new pid into ``target.json`` for whoever reads it next."""
    processes = tuple(replace(p, pid=pid) if p.name == name else p for p in endpoints.processes)
    updated = replace(endpoints, processes=processes)
    updated.write(Path(target_file or _target.DEFAULT_TARGET_FILE))
    return updated
