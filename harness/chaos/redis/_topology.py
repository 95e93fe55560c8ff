"""Shared plumbing of the Redis activities: sentinels, Redis processes, acknowledged records."""

from __future__ import annotations

import json
from pathlib import Path

from harness.chaos import _target
from harness.chaos._target import ActivityFailed
from harness.drivers.process import alive
from harness.model import Endpoints, ProcessInfo
from harness.targets._redis import Address, current_pid, primary_address


def sentinels(endpoints: Endpoints) -> list[Address]:
    """The sentinels' addresses; ActivityFailed when the target runs none."""
    where = endpoints.extra.get("redis_sentinels", "")
    if not where:
        raise ActivityFailed(
            f"target {endpoints.run_id} runs no Redis Sentinel; set redis: {{replicas: 1, "
            "sentinels: 3}} in the profile (experiments needing it require redis-failover)"
        )
    out = []
    for item in where.split(","):
        host, _, port = item.rpartition(":")
        out.append((host, int(port)))
    return out


def redis_processes(endpoints: Endpoints) -> list[ProcessInfo]:
    return endpoints.by_role("redis")


def address_of(proc: ProcessInfo) -> Address:
    """``host:port`` of a Redis process from its ``redis://host:port`` URL."""
    host, _, port = proc.url.removeprefix("redis://").split("/")[0].rpartition(":")
    return host, int(port)


def process_at(endpoints: Endpoints, address: Address) -> ProcessInfo:
    for proc in redis_processes(endpoints):
        if address_of(proc) == address:
            return proc
    raise ActivityFailed(
        f"the sentinels report {address[0]}:{address[1]} as primary, which is no Redis of "
        f"target {endpoints.run_id}"
    )


def primary(endpoints: Endpoints) -> ProcessInfo | None:
    """The Redis process a majority of the sentinels report as the primary now, or None."""
    address = primary_address(sentinels(endpoints))
    return None if address is None else process_at(endpoints, address)


def pid_of(endpoints: Endpoints, proc: ProcessInfo) -> int:
    """Its pid now: after a restart by :func:`restart_redis` it is no longer the one in
    ``target.json`` when the harness rewrote that file since."""
    return current_pid(Path(endpoints.run_dir), proc.name, proc.pid)


def running(endpoints: Endpoints, proc: ProcessInfo) -> bool:
    """Whether it runs: a killed Redis that its parent (the harness) has not reaped yet is a
    zombie, which ``kill(pid, 0)`` would still find."""
    return alive(pid_of(endpoints, proc), None)


def last_killed(endpoints: Endpoints) -> str:
    """The name of the Redis the latest fault on the timeline hit ("" when none did)."""
    names = {p.name for p in redis_processes(endpoints)}
    hits = [
        str(e.get("target"))
        for e in _target.timeline(endpoints).faults()
        if e.get("event") == "injected" and e.get("target") in names
    ]
    return hits[-1] if hits else ""


def record_path(endpoints: Endpoints, record: str) -> Path:
    if not record or "/" in record:
        raise ActivityFailed(f"record must be a plain name, not {record!r}")
    return Path(endpoints.run_dir) / f"{record}.sessions.json"


def recorded(endpoints: Endpoints, record: str) -> list[str]:
    path = record_path(endpoints, record)
    try:
        ids: list[str] = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ActivityFailed(f"{path}: unreadable record of acknowledged sessions: {exc}") from exc
    return ids


def write_record(endpoints: Endpoints, record: str, ids: list[str]) -> None:
    path = record_path(endpoints, record)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ids))
    tmp.replace(path)
