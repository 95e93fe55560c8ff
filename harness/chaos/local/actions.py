"""Fault actions against the ``local`` target.

Each records its instant on the run's fault timeline before returning, so MTTR is measured
from the moment the fault was applied.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from harness.chaos import _target
from harness.chaos._target import ActivityFailed

__all__ = ["kill_controller_leader"]


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
    sig = _signal(signal_name)
    leaders = [(p, s) for p, s in _target.controller_statuses(endpoints) if s.get("leader")]
    if len(leaders) != 1:
        raise ActivityFailed(f"expected exactly one controller leader, found {len(leaders)}")
    proc, status = leaders[0]
    if int(status.get("pid", -1)) != proc.pid:
        raise ActivityFailed(
            f"{proc.name} reports pid {status.get('pid')} but the target file says {proc.pid}"
        )
    event = _target.timeline(endpoints).append(
        {
            "kind": "fault",
            "name": fault_name,
            "event": "injected",
            "target": proc.name,
            "pid": proc.pid,
            "detail": f"{signal_name} to leader epoch {status.get('epoch')}",
        }
    )
    os.kill(proc.pid, sig)
    return {"killed": proc.name, "pid": proc.pid, "epoch": status.get("epoch"), "at": event["at"]}


def _signal(name: str) -> signal.Signals:
    try:
        return signal.Signals[name.upper()]
    except KeyError:
        raise ActivityFailed(f"unknown signal {name!r}; use e.g. SIGKILL or SIGTERM") from None
