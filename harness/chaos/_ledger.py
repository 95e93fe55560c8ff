"""Processes that activities start (CPU hogs, restarted replicas): ``<run_dir>/ledger-chaos.json``.

The file has the format of the supervisor's ``ledger.json`` (``{"processes": [{name, role, pid,
start_ticks, argv, log}]}``), so :func:`harness.drivers.process.stop_ledger` stops whatever an
activity left running, and a later activity finds the argv a replica now runs with. Activities
run one at a time, but a plain ``chaos run`` may share the target with a harness run: every
update holds an exclusive lock on the file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.drivers.process import (
    CHAOS_LEDGER,
    ManagedProcess,
    alive,
    proc_start_ticks,
    stop_processes,
)
from harness.model import Endpoints

LEDGER = CHAOS_LEDGER
SUPERVISOR_LEDGER = "ledger.json"


def path(endpoints: Endpoints) -> Path:
    return Path(endpoints.run_dir) / LEDGER


def entries(endpoints: Endpoints) -> dict[str, dict[str, Any]]:
    """The processes activities started, by name (the latest start of each name)."""
    return {e["name"]: e for e in _read(path(endpoints))}


def original(endpoints: Endpoints, name: str) -> dict[str, Any] | None:
    """The supervisor's entry for ``name``: the argv and log it was deployed with."""
    for entry in _read(Path(endpoints.run_dir) / SUPERVISOR_LEDGER):
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
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    entry = {
        "name": name,
        "role": role,
        "pid": popen.pid,
        "start_ticks": proc_start_ticks(popen.pid),
        "argv": list(argv),
        "log": str(log_path),
    }
    with _locked(path(endpoints)) as procs:
        procs[:] = [p for p in procs if p.get("name") != name] + [entry]
    return popen


def forget(endpoints: Endpoints, names: Sequence[str]) -> None:
    """Drop ``names`` from the ledger (they were stopped)."""
    with _locked(path(endpoints)) as procs:
        procs[:] = [p for p in procs if p.get("name") not in names]


def stop(endpoints: Endpoints, *, role: str) -> list[str]:
    """Stop every still-running process of ``role`` an activity started; return their names."""
    running = [
        _managed(e)
        for e in entries(endpoints).values()
        if e.get("role") == role and alive(int(e["pid"]), e.get("start_ticks"))
    ]
    stop_processes(running)
    forget(endpoints, [p.name for p in running])
    return [p.name for p in running]


def _managed(entry: dict[str, Any]) -> ManagedProcess:
    return ManagedProcess(
        name=entry["name"],
        role=entry.get("role", ""),
        argv=tuple(entry.get("argv", ())),
        popen=None,
        pid=int(entry["pid"]),
        start_ticks=entry.get("start_ticks"),
        log_path=Path(entry.get("log", os.devnull)),
    )


def _read(file: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return []
    procs: list[dict[str, Any]] = data.get("processes", []) if isinstance(data, dict) else []
    return procs


@contextlib.contextmanager
def _locked(file: Path) -> Iterator[list[dict[str, Any]]]:
    """Read, let the caller change, and write back the ledger under an exclusive lock."""
    with open(file.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        procs = _read(file)
        yield procs
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"owner_pid": os.getpid(), "processes": procs}, indent=2))
        tmp.replace(file)
