"""Fault actions against the ``local`` target's processes.

Each records its instant on the run's fault timeline before it acts, so recovery is measured
from the moment the fault was applied. Every action is bounded in time and stops by itself;
``thaw_all`` is the rollback for the freezes.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from typing import Any

from harness.chaos import _target
from harness.chaos._target import ActivityFailed
from harness.chaos.network.actions import partition_hosts
from harness.drivers.process import alive
from harness.model import Endpoints, ProcessInfo
from harness.util.http import request

__all__ = [
    "freeze_controller_leader",
    "kill_controller_leader",
    "kill_node_agent",
    "kill_process",
    "partition_node_agent",
    "thaw_all",
]

MAX_FREEZE_S = 120.0
KILL_WAIT_S = 5.0
LONG_LIVED_S = 10.0
PLACED = ("Ready", "Allocated")


def kill_controller_leader(
    target_file: str = "",
    signal_name: str = "SIGKILL",
    fault_name: str = "controller-leader-kill",
) -> dict[str, Any]:
    """Send ``signal_name`` to the controller replica that currently holds the leader lease.

    The leader is the replica whose ``/status`` says ``leader: true``; its pid is checked
    against the target file before the signal is sent. Fails (and records nothing) when no
    replica leads.
    """
    endpoints = _target.load(target_file)
    proc, status = _leader(endpoints)
    at = _signal(
        endpoints,
        proc,
        _signum(signal_name),
        fault_name=fault_name,
        detail=f"{signal_name} to leader epoch {status.get('epoch')}",
    )
    return {"killed": proc.name, "pid": proc.pid, "epoch": status.get("epoch"), "at": at}


def kill_process(
    target_file: str = "",
    name: str = "",
    role: str = "",
    signal_name: str = "SIGKILL",
    fault_name: str = "process-kill",
) -> dict[str, Any]:
    """Send ``signal_name`` to the process called ``name``, or to the first live one of ``role``.

    Roles of the local target: redis, api, loadbalancer, controller, agent, blackbox,
    prometheus.
    """
    endpoints = _target.load(target_file)
    candidates = [
        p
        for p in endpoints.processes
        if (p.name == name if name else p.role == role) and _target.pid_alive(p.pid)
    ]
    if not (name or role):
        raise ActivityFailed("name a process (name=...) or a role (role=...) to signal")
    if not candidates:
        raise ActivityFailed(
            f"no live process named {name!r}" if name else f"no live process of role {role!r}"
        )
    proc = candidates[0]
    at = _signal(
        endpoints,
        proc,
        _signum(signal_name),
        fault_name=fault_name,
        detail=f"{signal_name} to {proc.name}",
    )
    return {"signalled": proc.name, "pid": proc.pid, "at": at}


def kill_node_agent(
    target_file: str = "",
    signal_name: str = "SIGKILL",
    fault_name: str = "node-agent-kill",
) -> dict[str, Any]:
    """Send ``signal_name`` to the live node agent whose loss ends the fewest long-lived
    sessions (Active for over ``LONG_LIVED_S``), of those the one with the most game servers:
    they stop answering at once, and the sessions on them end ServerLost when the node is found
    lost.

    The controller must find the node's heartbeat gone, mark it lost and schedule its servers
    onto the other nodes; ``probes.servers_ready_elsewhere`` judges that. After a SIGKILL the
    action returns once the process is gone.
    """
    endpoints = _target.load(target_file)
    proc, why = _choose_agent(endpoints)
    at = _signal(
        endpoints,
        proc,
        _signum(signal_name),
        fault_name=fault_name,
        detail=f"{signal_name} to node agent {proc.name} ({why})",
    )
    gone = _wait_gone(proc.pid, KILL_WAIT_S) if signal_name.upper() == "SIGKILL" else None
    return {"killed": proc.name, "pid": proc.pid, "at": at, "gone": gone}


def partition_node_agent(
    target_file: str = "",
    *,
    from_hosts: list[str] | None = None,
    duration_s: float = 12.0,
    one_way: bool = False,
    fault_name: str = "node-partition",
) -> dict[str, Any]:
    """Cut the host of the node agent whose loss ends the fewest long-lived sessions (as
    ``kill_node_agent`` chooses) off from ``from_hosts`` (default: the Redis host) for
    ``duration_s`` seconds, then heal (``harness.chaos.network.actions.partition_hosts``;
    namespaced targets only; ``heal_all`` is the rollback).
    """
    proc, _ = _choose_agent(_target.load(target_file))
    host = proc.host or proc.name
    return partition_hosts(
        target_file,
        hosts=[host],
        from_hosts=from_hosts or ["redis"],
        one_way=one_way,
        duration_s=duration_s,
        fault_name=fault_name,
    )


def freeze_controller_leader(
    target_file: str = "",
    duration_s: float = 10.0,
    fault_name: str = "controller-leader-freeze",
) -> dict[str, Any]:
    """Freeze the leader with SIGSTOP for ``duration_s`` (a long GC pause), then SIGCONT it.

    While it is frozen its lease runs out and a standby takes over; once thawed, the old
    leader must find itself fenced (its writes carry a stale epoch) and step down. The action
    returns after the thaw; the probes after it judge the split brain.
    """
    if not 0 < duration_s <= MAX_FREEZE_S:
        raise ActivityFailed(f"duration_s must be in (0, {MAX_FREEZE_S:g}], not {duration_s}")
    endpoints = _target.load(target_file)
    proc, status = _leader(endpoints)
    at = _signal(
        endpoints,
        proc,
        signal.SIGSTOP,
        fault_name=fault_name,
        detail=f"SIGSTOP to leader epoch {status.get('epoch')} for {duration_s:g} s",
    )
    try:
        time.sleep(duration_s)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        _target.timeline(endpoints).append(
            {
                "kind": "fault",
                "name": fault_name,
                "event": "thawed",
                "target": proc.name,
                "pid": proc.pid,
            }
        )
    return {
        "frozen": proc.name,
        "pid": proc.pid,
        "epoch": status.get("epoch"),
        "at": at,
        "thawed_after_s": duration_s,
    }


def thaw_all(target_file: str = "") -> list[str]:
    """SIGCONT every live process of the target (the rollback of any freeze); return names."""
    endpoints = _target.load(target_file)
    thawed = []
    for proc in endpoints.processes:
        if _target.pid_alive(proc.pid):
            os.kill(proc.pid, signal.SIGCONT)
            thawed.append(proc.name)
    return thawed


def _wait_gone(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` is gone (a zombie counts as gone); return whether it went in time."""
    deadline = time.monotonic() + timeout_s
    while alive(pid, None):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _choose_agent(endpoints: Endpoints) -> tuple[ProcessInfo, str]:
    """The live node agent whose loss ends the fewest long-lived sessions (Active for over
    ``LONG_LIVED_S``), and of those the one running the most game servers (so that losing it
    matters); with a sentence saying why."""
    agents = [p for p in endpoints.by_role("agent") if _target.pid_alive(p.pid)]
    if len(agents) < 2:
        raise ActivityFailed(f"need two live node agents to lose one, found {len(agents)}")
    token = endpoints.admin_token()
    servers = _items(endpoints, "/v1/servers?limit=500", token)
    node_of = {s["id"]: str(s.get("node") or "") for s in servers}
    placed = Counter(str(s.get("node") or "") for s in servers if s.get("state") in PLACED)
    long_lived: Counter[str] = Counter()
    now = time.time()
    for session in _items(endpoints, "/v1/sessions?state=Active&limit=500", token):
        if now - float(session.get("created_at") or now) > LONG_LIVED_S:
            long_lived[node_of.get(session.get("server_id", ""), "")] += 1
    proc = min(agents, key=lambda p: (long_lived[p.name], -placed[p.name], p.name))
    why = f"{placed[proc.name]} game servers, {long_lived[proc.name]} long-lived sessions on it"
    return proc, why


def _items(endpoints: Endpoints, path: str, token: str) -> list[dict[str, Any]]:
    resp = request("GET", f"{endpoints.api_url}{path}", timeout_s=5.0, token=token)
    if not resp.ok:
        raise ActivityFailed(f"GET {path} answered {resp.status or resp.error}")
    items: list[dict[str, Any]] = resp.json().get("items", [])
    return items


def _leader(endpoints: Endpoints) -> tuple[ProcessInfo, dict[str, Any]]:
    leaders = [(p, s) for p, s in _target.controller_statuses(endpoints) if s.get("leader")]
    if len(leaders) != 1:
        raise ActivityFailed(f"expected exactly one controller leader, found {len(leaders)}")
    proc, status = leaders[0]
    if int(status.get("pid", -1)) != proc.pid:
        raise ActivityFailed(
            f"{proc.name} reports pid {status.get('pid')} but the target file says {proc.pid}"
        )
    return proc, status


def _signal(
    endpoints: Endpoints, proc: ProcessInfo, sig: signal.Signals, *, fault_name: str, detail: str
) -> float:
    """Record the fault on the timeline, then deliver ``sig``; return the recorded instant."""
    event = _target.timeline(endpoints).append(
        {
            "kind": "fault",
            "name": fault_name,
            "event": "injected",
            "target": proc.name,
            "pid": proc.pid,
            "detail": detail,
        }
    )
    os.kill(proc.pid, sig)
    return event["at"]


def _signum(name: str) -> signal.Signals:
    try:
        return signal.Signals[name.upper()]
    except KeyError:
        raise ActivityFailed(f"unknown signal {name!r}; use e.g. SIGKILL or SIGTERM") from None
