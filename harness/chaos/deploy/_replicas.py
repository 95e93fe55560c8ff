"""Restarting one replica as a service manager would, and the load balancer's view of it.

A restart stops the process (SIGTERM to its group, SIGKILL after a grace period), waits until
HAProxy has noticed it down (when the replica sits behind it), starts the command again (the
same argv, or a new build's), and waits until the replica answers ``/readyz`` and HAProxy has
it back in rotation. The new process is recorded in the activities' ledger (``_ledger``) and
its pid in the target file, so later activities, probes and ``harness down`` find it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.chaos import _ledger, _target
from harness.chaos._target import ActivityFailed
from harness.drivers.process import alive
from harness.model import Endpoints, ProcessInfo
from harness.util.http import request

STOP_GRACE_S = 5.0
LB_DOWN_WAIT_S = 5.0  # HAProxy marks a replica down after fall x inter (2 x 500 ms locally)
POLL_S = 0.1
# One line of HAProxy's Prometheus exporter: the state of one backend server.
_STATUS = re.compile(
    r'^haproxy_server_status\{(?=[^}]*proxy="(?P<proxy>[^"]+)")(?=[^}]*server="(?P<server>[^"]+)")'
    r'(?=[^}]*state="(?P<state>[^"]+)")[^}]*\}\s+(?P<value>\S+)$'
)
BACKEND = "api_replicas"


@dataclass(frozen=True)
class Restarted:
    """One replica restarted: its pids and how long it took to serve again."""

    name: str
    old_pid: int
    new_pid: int
    ready_s: float  # from the stop to a 200 on the replica's own /readyz
    in_rotation_s: float  # from the stop to HAProxy's health check marking it UP

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "old_pid": self.old_pid,
            "new_pid": self.new_pid,
            "ready_s": round(self.ready_s, 3),
            "in_rotation_s": round(self.in_rotation_s, 3),
        }


def lb_states(endpoints: Endpoints, timeout_s: float = 1.0) -> dict[str, str]:
    """HAProxy's view of each API replica (``UP``, ``DOWN``, ``MAINT``...), by server name.

    With regions each region's balancer knows its own replicas; their views are merged.
    """
    states: dict[str, str] = {}
    for lb in endpoints.by_role("loadbalancer"):
        if not lb.url:
            continue
        resp = request("GET", f"{lb.url}/metrics", timeout_s=timeout_s)
        if not resp.ok:
            raise ActivityFailed(f"HAProxy's metrics at {lb.url} answered {resp.status}")
        states.update(parse_lb_states(resp.body.decode(errors="replace")))
    return states


def parse_lb_states(text: str, backend: str = BACKEND) -> dict[str, str]:
    """The state whose ``haproxy_server_status`` is 1 for each server of ``backend``."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        m = _STATUS.match(line)
        if m and m["proxy"] == backend and float(m["value"]) == 1:
            states[m["server"]] = m["state"]
    return states


def restart(
    endpoints: Endpoints,
    target_file: str,
    proc: ProcessInfo,
    *,
    argv: Sequence[str] | None = None,
    ready_timeout_s: float,
    wait_ready: bool = True,
) -> tuple[Restarted, Endpoints]:
    """Restart ``proc`` with ``argv`` (default: what it runs with now); return the new endpoints.

    With ``wait_ready`` false the replica is only started (a new build that may never become
    ready); ``ready_s`` and ``in_rotation_s`` are then 0.
    """
    entry = _ledger.current(endpoints, proc.name)
    if entry is None:
        raise ActivityFailed(
            f"{proc.name} is in no ledger of run {endpoints.run_id}; cannot tell how to start it"
        )
    command = list(argv) if argv is not None else list(entry["argv"])
    started = time.monotonic()
    stop_process(proc.pid)
    behind_lb = proc.role == "api"
    if behind_lb:
        _wait_lb(endpoints, proc.name, lambda s: s != "UP", LB_DOWN_WAIT_S, strict=False)
    popen = _ledger.spawn(
        endpoints, proc.name, command, role=proc.role, log_path=Path(entry["log"])
    )
    endpoints = _with_pid(endpoints, target_file, proc.name, popen.pid)
    ready_s = in_rotation_s = 0.0
    if wait_ready:
        ready_s = wait_ready_http(proc, popen.pid, started, ready_timeout_s)
        in_rotation_s = ready_s
        if behind_lb:
            left = ready_timeout_s - (time.monotonic() - started)
            _wait_lb(endpoints, proc.name, lambda s: s == "UP", left, strict=True)
            in_rotation_s = time.monotonic() - started
    return Restarted(proc.name, proc.pid, popen.pid, ready_s, in_rotation_s), endpoints


def stop_process(pid: int) -> None:
    """SIGTERM ``pid``'s group (each replica leads its own), SIGKILL after a grace period."""
    if not alive(pid, None):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + STOP_GRACE_S
        while time.monotonic() < deadline:
            _reap(pid)
            if not alive(pid, None):
                return
            time.sleep(POLL_S / 2)
    raise ActivityFailed(f"process {pid} survived SIGKILL")


def wait_ready_http(proc: ProcessInfo, pid: int, started: float, timeout_s: float) -> float:
    """Seconds from ``started`` until ``proc`` answers 200 on ``/readyz`` (its health URL)."""
    deadline = started + timeout_s
    path = "/readyz" if proc.role == "api" else "/healthz"
    while time.monotonic() < deadline:
        if request("GET", f"{proc.url}{path}", timeout_s=1.0).ok:
            return time.monotonic() - started
        _reap(pid)
        if not alive(pid, None):
            raise ActivityFailed(f"{proc.name} (pid {pid}) exited while starting; see its log")
        time.sleep(POLL_S)
    raise ActivityFailed(f"{proc.name} was not ready on {path} within {timeout_s:g} s")


def _wait_lb(
    endpoints: Endpoints, name: str, ok: Callable[[str], bool], timeout_s: float, *, strict: bool
) -> None:
    deadline = time.monotonic() + max(timeout_s, 0.0)
    state = ""
    while time.monotonic() < deadline:
        state = lb_states(endpoints).get(name, "")
        if ok(state):
            return
        time.sleep(POLL_S)
    if strict:
        raise ActivityFailed(
            f"HAProxy did not put {name} back in rotation within {timeout_s:g} s (it says "
            f"{state or 'nothing'})"
        )


def _with_pid(endpoints: Endpoints, target_file: str, name: str, pid: int) -> Endpoints:
    """Write ``pid`` for ``name`` into the target file (through any symlink); return it."""
    file = Path(target_file or _target.DEFAULT_TARGET_FILE).resolve()
    current = Endpoints.read(file)
    processes = tuple(replace(p, pid=pid) if p.name == name else p for p in current.processes)
    updated = replace(current, processes=processes)
    updated.write(file)
    return replace(endpoints, processes=processes)


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status when this process is its parent (a replica it started)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
