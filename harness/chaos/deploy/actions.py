"""Deploy actions: a rolling restart of the API replicas, and a rollback of a failed build.

Both restart replicas one at a time and wait, before touching the next, until the restarted
one answers ``/readyz`` and HAProxy has it back in rotation, so that at least one replica serves
throughout. A "build" of the local target is the command line a replica runs with; a new build
that fails its readiness is simulated with refplat's ``--fail-readiness`` flag. Every restart is
recorded on the run's timeline (``injected`` when the replica is stopped, ``recovered`` when it
is in rotation again). ``restore_previous_builds`` is the rollback of both actions.
"""

from __future__ import annotations

import time
from typing import Any

from harness.chaos import _ledger, _target
from harness.chaos._target import ActivityFailed
from harness.chaos.deploy import _replicas
from harness.model import Endpoints, ProcessInfo

__all__ = ["restore_previous_builds", "rollback_on_failed_readiness", "rolling_restart"]

MAX_READY_TIMEOUT_S = 120.0
BAD_BUILD_FLAG = "--fail-readiness"


def rolling_restart(
    target_file: str = "",
    *,
    role: str = "api",
    ready_timeout_s: float = 30.0,
    fault_name: str = "rolling-restart",
) -> dict[str, Any]:
    """Restart every replica of ``role`` one by one (a zero-downtime deploy of the same build).

    Each replica is stopped with SIGTERM, started again with its command line, and must answer
    ``/readyz`` and be back in HAProxy's rotation within ``ready_timeout_s`` before the next
    one is touched. Returns each replica's old and new pid and its times to ready and to
    rotation.
    """
    _check_timeout(ready_timeout_s)
    endpoints = _target.load(target_file)
    replicas = _replicas_of(endpoints, role)
    done = []
    for proc in replicas:
        _ensure_others_up(endpoints, proc)
        _record(endpoints, fault_name, "injected", proc, f"rolling restart of {proc.name}")
        restarted, endpoints = _replicas.restart(
            endpoints, target_file, proc, ready_timeout_s=ready_timeout_s
        )
        _record(
            endpoints,
            fault_name,
            "recovered",
            proc,
            f"pid {restarted.new_pid} ready after {restarted.ready_s:.2f} s, in rotation after "
            f"{restarted.in_rotation_s:.2f} s",
        )
        done.append(restarted.as_json())
    return {"role": role, "restarted": done}


def rollback_on_failed_readiness(
    target_file: str = "",
    *,
    role: str = "api",
    name: str = "",
    readiness_budget_s: float = 5.0,
    ready_timeout_s: float = 30.0,
    bad_build_args: list[str] | None = None,
    fault_name: str = "bad-build-rollback",
) -> dict[str, Any]:
    """Deploy a new build to one replica; when it fails readiness, restore the previous build.

    The new build is the replica's command line plus ``bad_build_args`` (default
    ``["--fail-readiness"]``: the replica answers 503 on ``/readyz``). When it is not ready
    within ``readiness_budget_s`` it is stopped and the previous command line started again,
    which must be ready and back in rotation within ``ready_timeout_s``. A new build that does
    become ready is kept. The replica is ``name``, else the first of ``role``.
    """
    _check_timeout(ready_timeout_s)
    if not 0 < readiness_budget_s <= MAX_READY_TIMEOUT_S:
        raise ActivityFailed(f"readiness_budget_s must be in (0, {MAX_READY_TIMEOUT_S:g}]")
    endpoints = _target.load(target_file)
    candidates = _replicas_of(endpoints, role)
    proc = next((p for p in candidates if p.name == name), None) if name else candidates[0]
    if proc is None:
        raise ActivityFailed(f"no replica named {name!r} of role {role!r}")
    _ensure_others_up(endpoints, proc)
    entry = _ledger.current(endpoints, proc.name)
    if entry is None:
        raise ActivityFailed(f"{proc.name} is in no ledger of run {endpoints.run_id}")
    previous = list(entry["argv"])
    new_build = [*previous, *(bad_build_args if bad_build_args is not None else [BAD_BUILD_FLAG])]
    _record(endpoints, fault_name, "injected", proc, f"new build on {proc.name}: {new_build[-1]}")
    started = time.monotonic()
    deployed, endpoints = _replicas.restart(
        endpoints,
        target_file,
        proc,
        argv=new_build,
        ready_timeout_s=ready_timeout_s,
        wait_ready=False,
    )
    new_proc = _process(endpoints, proc.name)
    try:
        _replicas.wait_ready_http(new_proc, deployed.new_pid, started, readiness_budget_s)
    except ActivityFailed as exc:
        failed = str(exc)
    else:
        _record(endpoints, fault_name, "recovered", proc, "the new build became ready; kept")
        return {"replica": proc.name, "failed_readiness": False, "new_pid": deployed.new_pid}
    restored, endpoints = _replicas.restart(
        endpoints, target_file, new_proc, argv=previous, ready_timeout_s=ready_timeout_s
    )
    took = time.monotonic() - started
    _record(
        endpoints,
        fault_name,
        "recovered",
        proc,
        f"rolled back to the previous build (pid {restored.new_pid}) {took:.2f} s after the "
        f"deploy; in rotation {restored.in_rotation_s:.2f} s after the rollback began",
    )
    return {
        "replica": proc.name,
        "failed_readiness": True,
        "why": failed,
        "bad_build_pid": deployed.new_pid,
        "restored_pid": restored.new_pid,
        "rolled_back_after_s": round(took, 3),
    }


def restore_previous_builds(
    target_file: str = "", role: str = "api", ready_timeout_s: float = 30.0
) -> list[str]:
    """Rollback: start every replica of ``role`` that is down, or runs another command line
    than it was deployed with, again with its deployed one; return the names restarted."""
    endpoints = _target.load(target_file)
    restarted = []
    for proc in endpoints.by_role(role):
        deployed = _ledger.original(endpoints, proc.name)
        running = _ledger.current(endpoints, proc.name)
        if deployed is None or running is None:
            continue
        if _target.pid_alive(proc.pid) and running["argv"] == deployed["argv"]:
            continue
        _, endpoints = _replicas.restart(
            endpoints, target_file, proc, argv=deployed["argv"], ready_timeout_s=ready_timeout_s
        )
        restarted.append(proc.name)
    return restarted


def _replicas_of(endpoints: Endpoints, role: str) -> list[ProcessInfo]:
    replicas = endpoints.by_role(role)
    if not replicas:
        raise ActivityFailed(f"the target has no process of role {role!r}")
    return replicas


def _process(endpoints: Endpoints, name: str) -> ProcessInfo:
    return next(p for p in endpoints.processes if p.name == name)


def _ensure_others_up(endpoints: Endpoints, proc: ProcessInfo) -> None:
    """Refuse to take ``proc`` down when no other replica is in rotation (that is an outage)."""
    if proc.role != "api":
        return
    states = _replicas.lb_states(endpoints)
    others = [name for name, state in states.items() if name != proc.name and state == "UP"]
    if not others:
        raise ActivityFailed(
            f"no API replica but {proc.name} is in HAProxy's rotation ({states}); restarting it "
            "would be an outage, not a deploy"
        )


def _record(endpoints: Endpoints, fault: str, event: str, proc: ProcessInfo, detail: str) -> None:
    _target.timeline(endpoints).append(
        {
            "kind": "fault",
            "name": fault,
            "event": event,
            "target": proc.name,
            "pid": proc.pid,
            "detail": detail,
        }
    )


def _check_timeout(ready_timeout_s: float) -> None:
    if not 0 < ready_timeout_s <= MAX_READY_TIMEOUT_S:
        raise ActivityFailed(
            f"ready_timeout_s must be in (0, {MAX_READY_TIMEOUT_S:g}], not {ready_timeout_s}"
        )
