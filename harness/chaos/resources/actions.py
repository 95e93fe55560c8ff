"""Resource faults: a CPU hog, a tenant filling its disk quota, a tenant storming the API.

- ``cpu_hog`` burns ``cores`` CPUs for ``duration_s`` in child processes that stop by
  themselves; ``stop_cpu_hogs`` is its rollback.
- ``fill_disk`` is a tenant writing world files through the API until the platform refuses
  with 507 (its session's disk quota exhausted): the realistic way a game server fills its data
  directory, and the one the platform must survive (refused cleanly, counted, other sessions
  unaffected). ``remove_filler`` deletes the filler files, session and server.
- ``rate_limit_storm`` is one token hammering the API (bounded in count and time) while another
  tenant keeps working: the storm must get 429 with ``Retry-After``, the other tenant nothing but
  success.

Each records ``injected`` and ``ended`` on the run's timeline; the tenant faults save their
counts for the probes in :mod:`harness.chaos.resources.probes`.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from harness.chaos import _ledger, _target
from harness.chaos._target import ActivityFailed
from harness.chaos.resources import _tenants
from harness.chaos.resources._tenants import Connection, quota_rejections
from harness.model import Endpoints

__all__ = ["cpu_hog", "fill_disk", "rate_limit_storm", "remove_filler", "stop_cpu_hogs"]

MAX_HOG_S = 120.0
HOG_ROLE = "cpu-hog"
# A busy loop that stops by itself after argv[1] seconds.
HOG_CODE = (
    "import sys, time\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end: pass\n"
)
MAX_FILL_BYTES = 4 * 1024**3
FILE_BYTES = 4 * 1024 * 1024
MAX_STORM_S = 60.0
MAX_STORM_REQUESTS = 50_000
READY_TIMEOUT_S = 30.0


def cpu_hog(
    target_file: str = "",
    *,
    host: str = "",
    role: str = "",
    duration_s: float = 5.0,
    cores: int = 1,
    fault_name: str = "cpu-hog",
) -> dict[str, Any]:
    """Burn ``cores`` CPUs for ``duration_s`` seconds, then return the CPU seconds spent.

    ``host`` runs the hogs inside that host's network namespace (namespaced targets); ``role``
    pins them to the CPUs the first live process of that role may run on, so they compete with
    it. Each hog is a child process that stops by itself; the action waits for them.
    """
    _target.check_within("duration_s", duration_s, MAX_HOG_S)
    if not 1 <= cores <= (os.cpu_count() or 1):
        raise ActivityFailed(f"cores must be in [1, {os.cpu_count()}], not {cores}")
    endpoints = _target.load(target_file)
    prefix = ["ip", "netns", "exec", endpoints.host(host).namespace] if host else []
    cpus = _cpus_of(endpoints, role) if role else None
    argv = [*prefix, sys.executable, "-c", HOG_CODE, str(duration_s)]
    log_path = Path(endpoints.run_dir) / "logs" / "cpu-hog.log"
    hogged = host or role or "machine"
    detail = f"{cores} CPU hog(s) for {duration_s:g} s"
    event = _target.record_fault(endpoints, fault_name, "injected", target=hogged, detail=detail)
    names = [f"cpu-hog-{i}" for i in range(1, cores + 1)]
    # Held until reaped, so that subprocess never collects a hog's status before wait4 does.
    hogs = [_ledger.spawn(endpoints, n, argv, role=HOG_ROLE, log_path=log_path) for n in names]
    pids = [hog.pid for hog in hogs]
    if cpus:
        for pid in pids:
            os.sched_setaffinity(pid, cpus)
    cpu_s = sum(_wait_cpu_seconds(pid) for pid in pids)
    for hog in hogs:
        hog.returncode = 0  # reaped by wait4 above
    _ledger.forget(endpoints, names)
    wall_s = time.time() - event["at"]
    detail = f"{cpu_s:.2f} CPU seconds over {wall_s:.2f} s"
    _target.record_fault(endpoints, fault_name, "ended", target=hogged, detail=detail)
    return {"hogs": pids, "cpu_s": round(cpu_s, 3), "wall_s": round(wall_s, 3), "at": event["at"]}


def stop_cpu_hogs(target_file: str = "") -> list[str]:
    """Rollback of ``cpu_hog``: stop every hog still running; return their names."""
    return _ledger.stop(_target.load(target_file), role=HOG_ROLE)


def fill_disk(
    target_file: str = "",
    *,
    file_bytes: int = FILE_BYTES,
    max_bytes: int = 256 * 1024 * 1024,
    fault_name: str = "disk-quota-fill",
) -> dict[str, Any]:
    """A new tenant writes world files of ``file_bytes`` through the API until its session's
    disk quota is exhausted, then one byte more.

    The tenant gets its own game server and session, so no other session shares its quota. The
    fault stops at the first 507 (quota exhausted), writes exactly what is left, then checks one
    more byte is refused too. It refuses to start when the quota is above ``max_bytes`` (every
    byte is really written to the data directory): start the api with a smaller
    ``--session-disk-quota-bytes`` for short runs.
    """
    if not 0 < max_bytes <= MAX_FILL_BYTES or not 0 < file_bytes <= max_bytes:
        raise ActivityFailed(f"need 0 < file_bytes <= max_bytes <= {MAX_FILL_BYTES}")
    endpoints = _target.load(target_file)
    filler = _tenant_session(endpoints, "filler")
    _tenants.save_result(endpoints, f"{fault_name}.filler", filler)
    session, token = filler["session"], filler["token"]
    usage = _tenants.call(endpoints, "GET", f"/v1/sessions/{session}/usage", token)
    quota = int(usage["quota_bytes"])
    if quota > max_bytes:
        raise ActivityFailed(
            f"the session disk quota is {quota} bytes, above max_bytes={max_bytes}: start the "
            "api with --session-disk-quota-bytes <= max_bytes, or raise max_bytes"
        )
    counted_before = quota_rejections(endpoints)
    detail = f"filling {quota} bytes"
    event = _target.record_fault(endpoints, fault_name, "injected", target=session, detail=detail)
    result = _fill(endpoints, filler, quota=quota, file_bytes=file_bytes)
    counted = quota_rejections(endpoints) - counted_before
    result.update(at=event["at"], quota_bytes=quota, session=session, counted_rejections=counted)
    _tenants.save_result(endpoints, fault_name, result)
    _tenants.save_result(endpoints, f"{fault_name}.filler", {**filler, "files": result["files"]})
    detail = f"{result['used_bytes']} of {quota} bytes used; statuses {result['statuses']}"
    _target.record_fault(endpoints, fault_name, "ended", target=session, detail=detail)
    return result


def remove_filler(target_file: str = "", fault_name: str = "disk-quota-fill") -> dict[str, Any]:
    """Rollback of ``fill_disk``: delete the filler files, end its session, delete its server."""
    endpoints = _target.load(target_file)
    filler = _tenants.load_result(endpoints, f"{fault_name}.filler")
    if filler is None:
        return {"removed": 0}
    removed = _remove_tenant_session(endpoints, filler, filler.get("files", []))
    _tenants.results_file(endpoints, f"{fault_name}.filler").unlink(missing_ok=True)
    return {"removed": removed, "session": filler["session"]}


def rate_limit_storm(
    target_file: str = "",
    *,
    duration_s: float = 4.0,
    max_requests: int = 5000,
    workers: int = 4,
    fault_name: str = "rate-limit-storm",
) -> dict[str, Any]:
    """A new tenant's token hammers its own session (``GET /v1/sessions/{id}``) from
    ``workers`` connections for at most ``duration_s`` seconds and ``max_requests`` requests,
    while the seeded tenant keeps listing its servers; return both sides' answers by status.

    Such a request is charged to the token's and the session's limits (refplat's defaults:
    200/s bursting to 400, and 50/s bursting to 100), so the storm is refused once either runs
    out. The storm's session and game server are removed afterwards.
    """
    if not 0 < duration_s <= MAX_STORM_S or not 0 < max_requests <= MAX_STORM_REQUESTS:
        raise ActivityFailed(
            f"need 0 < duration_s <= {MAX_STORM_S:g} and 0 < max_requests <= {MAX_STORM_REQUESTS}"
        )
    endpoints = _target.load(target_file)
    storm_tenant = _tenant_session(endpoints, "storm")
    path = f"/v1/sessions/{storm_tenant['session']}"
    detail = f"{workers} connections, one token"
    event = _target.record_fault(endpoints, fault_name, "injected", target="api", detail=detail)
    storm = _Storm(endpoints.api_url, storm_tenant["token"], path, deadline=0.0)
    bystander = _Storm(endpoints.api_url, endpoints.tenant_token(), "/v1/servers", deadline=0.0)
    storm.deadline = bystander.deadline = time.monotonic() + duration_s
    threads = [
        threading.Thread(target=storm.run, args=(max_requests,), daemon=True)
        for _ in range(workers)
    ]
    threads.append(threading.Thread(target=bystander.run, args=(max_requests, 0.05), daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + 2 * _tenants.TIMEOUT_S)
    _remove_tenant_session(endpoints, storm_tenant, files=[])
    result = {
        "at": event["at"],
        "sent": sum(storm.statuses.values()),
        "statuses": {str(k): v for k, v in sorted(storm.statuses.items())},
        "throttled_without_retry_after": storm.missing_retry_after,
        "retry_after_values": sorted(storm.retry_after),
        "bystander_statuses": {str(k): v for k, v in sorted(bystander.statuses.items())},
    }
    _tenants.save_result(endpoints, fault_name, result)
    detail = f"storm {result['statuses']}"
    _target.record_fault(endpoints, fault_name, "ended", target="api", detail=detail)
    return result


class _Storm:
    """Requests from one token until a deadline; answers counted by status (thread-safe)."""

    def __init__(self, api_url: str, token: str, path: str, *, deadline: float) -> None:
        self.api_url, self.token, self.path, self.deadline = api_url, token, path, deadline
        self.statuses: Counter[int] = Counter()
        self.missing_retry_after = 0
        self.retry_after: set[str] = set()
        self._lock = threading.Lock()

    def run(self, max_requests: int, pause_s: float = 0.0) -> None:
        conn = Connection(self.api_url, self.token)
        try:
            while time.monotonic() < self.deadline:
                with self._lock:
                    if sum(self.statuses.values()) >= max_requests:
                        return
                answer = conn.send("GET", self.path)
                with self._lock:
                    self.statuses[answer.status] += 1
                    if answer.status == 429:
                        value = answer.headers.get("retry-after", "")
                        self.missing_retry_after += not value
                        self.retry_after.add(value)
                if pause_s:
                    time.sleep(pause_s)
        finally:
            conn.close()


def _tenant_session(endpoints: Endpoints, prefix: str) -> dict[str, Any]:
    """A new tenant with one Ready game server and a session on it."""
    tenant, token = _tenants.new_tenant(endpoints, prefix)
    server = _tenants.call(endpoints, "POST", "/v1/servers", token, {"region": "local"})
    _tenants.wait_server_ready(endpoints, token, server["id"], READY_TIMEOUT_S)
    session = _tenants.call(endpoints, "POST", "/v1/sessions", token, {"region": "local"})
    return {"tenant": tenant, "token": token, "server": server["id"], "session": session["id"]}


def _remove_tenant_session(endpoints: Endpoints, owner: dict[str, Any], files: list[str]) -> int:
    """Delete ``files`` of the session, end it, delete its server; return the files deleted."""
    conn = Connection(endpoints.api_url, owner["token"])
    session = owner["session"]
    try:
        removed = sum(
            conn.send("DELETE", f"/v1/sessions/{session}/files/{path}").status == 200
            for path in files
        )
        conn.send("DELETE", f"/v1/sessions/{session}")
        conn.send("DELETE", f"/v1/servers/{owner['server']}")
    finally:
        conn.close()
    return removed


def _fill(
    endpoints: Endpoints, filler: dict[str, Any], *, quota: int, file_bytes: int
) -> dict[str, Any]:
    """Write files until 507, then the exact rest, then one byte more; count the answers."""
    conn = Connection(endpoints.api_url, filler["token"], timeout_s=30.0)
    session = filler["session"]
    statuses: Counter[int] = Counter()
    files: list[str] = []
    chunk = bytes(file_bytes)

    def put(size: int) -> _tenants.Answer:
        path = f"filler/{len(files):05d}.bin"
        answer = conn.send("PUT", f"/v1/sessions/{session}/files/{path}", chunk[:size])
        statuses[answer.status] += 1
        if answer.status in (200, 201):
            files.append(path)
        return answer

    try:
        answer = put(file_bytes)
        while answer.status in (200, 201) and len(files) * file_bytes <= quota:
            answer = put(file_bytes)
        used = _used(conn, session)
        if answer.status == 507 and quota - used > 0:
            answer = put(quota - used)  # exactly what is left: must be accepted
        last = put(1)  # the quota is exhausted: one byte more must be refused
        used = _used(conn, session)
    finally:
        conn.close()
    return {
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "refused_at_quota": last.status,
        "used_bytes": used,
        "files": files,
    }


def _used(conn: Connection, session: str) -> int:
    answer = conn.send("GET", f"/v1/sessions/{session}/usage")
    data = answer.json()
    return int(data["used_bytes"]) if isinstance(data, dict) and "used_bytes" in data else -1


def _cpus_of(endpoints: Endpoints, role: str) -> set[int]:
    for proc in endpoints.by_role(role):
        if _target.pid_alive(proc.pid):
            return os.sched_getaffinity(proc.pid)
    raise ActivityFailed(f"no live process of role {role!r} to share CPUs with")


def _wait_cpu_seconds(pid: int) -> float:
    """Wait for hog ``pid`` (a child) to stop by itself; return the CPU seconds it used."""
    _, _, usage = os.wait4(pid, 0)
    return usage.ru_utime + usage.ru_stime
