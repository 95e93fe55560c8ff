"""Processes that activities start (CPU hogs, restarted replicas): ``<run_dir>/ledger-chaos.json``.

The file is a :class:`harness.drivers.process.Ledger`, of the format of the supervisor's
``ledger.json``, so :func:`harness.drivers.process.stop_ledger` stops whatever an activity left
running, and a later activity finds the argv a replica now runs with. Activities run one at a
time, but a plain ``chaos run`` may share the target with a harness run: every update holds an
exclusive lock on the file.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.drivers.process import (
    CHAOS_LEDGER,
    SUPERVISOR_LEDGER,
    Ledger,
    ManagedProcess,
    start_logged,
    stop_processes,
)
from harness.model import Endpoints

LEDGER = CHAOS_LEDGER


def path(endpoints: Endpoints) -> Path:
    return Path(endpoints.run_dir) / LEDGER


def entries(endpoints: Endpoints) -> dict[str, dict[str, Any]]:
    """The processes activities started, by name (the latest start of each name)."""
    return {e["name"]: e for e in Ledger(path(endpoints)).entries()}


def original(endpoints: Endpoints, name: str) -> dict[str, Any] | None:
    """The supervisor's entry for ``name``: the argv and log it was deployed with."""
    for entry in Ledger(Path(endpoints.run_dir) / SUPERVISOR_LEDGER).entries():
        if entry.get("name") == name:
            return entry
    return None


def current(endpoints: Endpoints, name: str) -> dict[str, Any] | None:
    """The entry ``name`` runs with now: an activity's restart, else the supervisor's."""
    return entries(endpoints).get(name) or original(endpoints, name)


def spawn(
    endpoints: Endpoints, name: str, argv: Sequence[str], *, role: str, log_path: Path
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (its log appended to ``log_path``) and record it."""
    popen = start_logged(argv, log_path=log_path)
    proc = ManagedProcess.started(name, argv, role=role, pid=popen.pid, log_path=log_path)
    Ledger(path(endpoints)).add(proc, replace=True)
    return popen


def forget(endpoints: Endpoints, names: Sequence[str]) -> None:
    """Drop ``names`` from the ledger (they were stopped)."""
    Ledger(path(endpoints)).forget(names)


def stop(endpoints: Endpoints, *, role: str) -> list[str]:
    """Stop every still-running process of ``role`` an activity started; return their names."""
    procs = map(ManagedProcess.from_entry, entries(endpoints).values())
    running = [p for p in procs if p.role == role and p.running()]
    stop_processes(running)
    forget(endpoints, [p.name for p in running])
    return [p.name for p in running]
