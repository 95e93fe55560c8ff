"""Runs that outlive a command: ``harness up`` / ``harness down``, and cleanup after a crash.

Each run registers itself in ``<state_dir>/runs/<run-id>.json`` with its owner's pid. A run
whose owner died (``kill -9`` of the harness) is reaped by the next command: every process in
its ledger is stopped. A run brought up with ``harness up`` is detached: only ``harness down``
ends it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from harness.drivers.process import CHAOS_LEDGER, alive, proc_start_ticks, stop_ledger
from harness.engine import _seed
from harness.model import Endpoints
from harness.targets import RESTART_LEDGER, LocalTarget, LocalTopology, remove_namespaces
from harness.util.errors import ConfigError

log = logging.getLogger(__name__)

HELD_SESSIONS = 2


def register_run(state_dir: Path, run_id: str, run_dir: Path, *, detached: bool) -> None:
    runs = state_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    entry = {
        "run_id": run_id,
        "run_dir": str(run_dir.resolve()),
        "owner_pid": pid,
        "owner_start_ticks": proc_start_ticks(pid),
        "detached": detached,
    }
    (runs / f"{run_id}.json").write_text(json.dumps(entry, indent=2))


def unregister_run(state_dir: Path, run_id: str) -> None:
    (state_dir / "runs" / f"{run_id}.json").unlink(missing_ok=True)


def _entries(state_dir: Path) -> list[tuple[Path, dict[str, object]]]:
    out = []
    for path in sorted((state_dir / "runs").glob("*.json")):
        try:
            out.append((path, json.loads(path.read_text())))
        except (OSError, ValueError):
            log.warning("ignoring unreadable run entry %s", path)
    return out


def _stop_run(run_dir: Path) -> list[str]:
    """Stop a run's processes, then remove its network namespaces; return what went."""
    names = stop_ledger(run_dir / CHAOS_LEDGER) + stop_ledger(run_dir / RESTART_LEDGER)
    names += stop_ledger(run_dir / "ledger.json")
    return names + [f"netns {ns}" for ns in remove_namespaces(run_dir)]


def reap_stale_runs(state_dir: Path) -> list[str]:
    """Stop what runs killed before their teardown left behind; return the process names."""
    stopped: list[str] = []
    for path, entry in _entries(state_dir):
        owner = int(str(entry.get("owner_pid", 0)))
        ticks = entry.get("owner_start_ticks")
        if entry.get("detached") or alive(owner, int(str(ticks)) if ticks is not None else None):
            continue
        names = _stop_run(Path(str(entry["run_dir"])))
        if names:
            log.warning(
                "run %s was killed before its teardown; stopped %s",
                entry.get("run_id"),
                ", ".join(names),
            )
        stopped += names
        path.unlink(missing_ok=True)
    return stopped


def bring_up(
    *, run_id: str, run_dir: Path, state_dir: Path, topology: LocalTopology, servers: int
) -> Endpoints:
    """Deploy and seed the local target, leave it running, point ``.harness/target.json`` at it."""
    if any(e.get("detached") for _, e in _entries(state_dir)):
        raise ConfigError(
            f"A target brought up with `harness up` is still running (see {state_dir / 'runs'}); "
            "run `harness down` first."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    target = LocalTarget(run_id=run_id, run_dir=run_dir, topology=topology, detach=True)
    endpoints = _seed.deploy_seeded(
        target,
        servers=servers,
        held_sessions=HELD_SESSIONS,
        ready_timeout_s=topology.ready_timeout_s,
    )
    register_run(state_dir, run_id, run_dir, detached=True)
    link = state_dir / "target.json"
    link.unlink(missing_ok=True)
    link.symlink_to(run_dir.resolve() / "target.json")
    return endpoints


def bring_down(state_dir: Path) -> list[str]:
    """Stop every run brought up with ``harness up`` (and any stale one); return process names."""
    stopped = reap_stale_runs(state_dir)
    for path, entry in _entries(state_dir):
        if entry.get("detached"):
            stopped += _stop_run(Path(str(entry["run_dir"])))
            path.unlink(missing_ok=True)
    (state_dir / "target.json").unlink(missing_ok=True)
    return stopped
