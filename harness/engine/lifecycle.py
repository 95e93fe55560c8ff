"""Runs that outlive a command: ``harness up`` / ``harness down``, and cleanup after a crash.

Each run registers itself in ``<state_dir>/runs/<run-id>.json`` with its owner's pid, and, on
the kube target, its namespace with the admin kubeconfig and context (``kube``). A run whose
owner died (``kill -9`` of the harness) is reaped by the next command: every process in its
ledger is stopped, then a kube run's Nodes are put back and its namespace deleted. A run
brought up with ``harness up`` is registered as owned while it deploys (a killed ``up`` is
reaped) and detached once seeded: only ``harness down`` ends it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

from harness.drivers.process import CHAOS_LEDGER, alive, proc_start_ticks, stop_ledger
from harness.engine import _seed
from harness.model import Endpoints
from harness.targets import (
    RESTART_LEDGER,
    KubeOptions,
    KwokTarget,
    LocalTarget,
    LocalTopology,
    RunNamespace,
    release_namespace,
    remove_namespaces,
)
from harness.util.errors import ConfigError

log = logging.getLogger(__name__)

HELD_SESSIONS = 2


def register_run(
    state_dir: Path,
    run_id: str,
    run_dir: Path,
    *,
    detached: bool,
    kube: RunNamespace | None = None,
) -> None:
    """Write the run's entry; ``kube``: the namespace teardown deletes (kube target)."""
    runs = state_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    entry: dict[str, object] = {
        "run_id": run_id,
        "run_dir": str(run_dir.resolve()),
        "owner_pid": pid,
        "owner_start_ticks": proc_start_ticks(pid),
        "detached": detached,
    }
    if kube is not None:
        entry |= {"target": "kube", "kube": dataclasses.asdict(kube)}
    tmp = runs / f"{run_id}.json.tmp"  # a reader never sees half an entry
    tmp.write_text(json.dumps(entry, indent=2))
    tmp.replace(runs / f"{run_id}.json")


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


def _stop_run(entry: dict[str, object]) -> list[str]:
    """Stop a run's processes, remove its network namespaces, then take back what it left in its
    cluster (kube runs); return the processes and netns that went."""
    run_dir = Path(str(entry["run_dir"]))
    names = stop_ledger(run_dir / CHAOS_LEDGER) + stop_ledger(run_dir / RESTART_LEDGER)
    names += stop_ledger(run_dir / "ledger.json")
    names += [f"netns {ns}" for ns in remove_namespaces(run_dir)]
    where = _run_namespace(entry)
    if where is not None:
        done, warnings = release_namespace(run_dir, where)
        for line in done:
            log.info("run %s: %s", entry.get("run_id"), line)
        for line in warnings:
            log.warning("run %s: %s", entry.get("run_id"), line)
    return names


def _run_namespace(entry: dict[str, object]) -> RunNamespace | None:
    """The kube namespace an entry records, or None (a local run, or an unreadable record)."""
    kube = entry.get("kube")
    if entry.get("target") != "kube" or not isinstance(kube, dict):
        return None
    try:
        return RunNamespace(**{k: str(kube[k]) for k in ("namespace", "kubeconfig", "context")})
    except KeyError as exc:
        log.warning(
            "run %s: its entry lacks kube %s; its namespace is not deleted (`kubectl get ns -l "
            "gsharness.io/run-id` lists what runs left)",
            entry.get("run_id"),
            exc,
        )
        return None


def reap_stale_runs(state_dir: Path) -> list[str]:
    """Stop what runs killed before their teardown left behind; return the process names."""
    stopped: list[str] = []
    for path, entry in _entries(state_dir):
        owner = int(str(entry.get("owner_pid", 0)))
        ticks = entry.get("owner_start_ticks")
        if entry.get("detached") or alive(owner, int(str(ticks)) if ticks is not None else None):
            continue
        names = _stop_run(entry)
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
    *,
    run_id: str,
    run_dir: Path,
    state_dir: Path,
    topology: LocalTopology,
    servers: int,
    kube: KubeOptions | None = None,
) -> Endpoints:
    """Deploy and seed the local target (the kube target on KWOK with ``kube``), leave it
    running, point ``.harness/target.json`` at it."""
    if any(e.get("detached") for _, e in _entries(state_dir)):
        raise ConfigError(
            f"A target brought up with `harness up` is still running (see {state_dir / 'runs'}); "
            "run `harness down` first."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    target = (
        LocalTarget(run_id=run_id, run_dir=run_dir, topology=topology, detach=True)
        if kube is None
        else KwokTarget(run_id=run_id, run_dir=run_dir, topology=topology, kube=kube, detach=True)
    )

    def register(*, detached: bool) -> None:
        where = target.run_namespace if isinstance(target, KwokTarget) else None
        register_run(state_dir, run_id, run_dir, detached=detached, kube=where)

    register(detached=False)  # owned while it deploys: the next command reaps a killed `up`
    try:
        endpoints = _seed.deploy_seeded(
            target,
            servers=servers,
            held_sessions=HELD_SESSIONS,
            ready_timeout_s=topology.ready_timeout_s,
        )
    except BaseException:  # deploy_seeded tore the target down
        unregister_run(state_dir, run_id)
        raise
    register(detached=True)
    link = state_dir / "target.json"
    link.unlink(missing_ok=True)
    link.symlink_to(run_dir.resolve() / "target.json")
    return endpoints


def bring_down(state_dir: Path) -> list[str]:
    """Stop every run brought up with ``harness up`` (and any stale one), deleting a kube run's
    namespace after its processes; return the names of the processes stopped."""
    stopped = reap_stale_runs(state_dir)
    for path, entry in _entries(state_dir):
        if entry.get("detached"):
            stopped += _stop_run(entry)
            path.unlink(missing_ok=True)
    (state_dir / "target.json").unlink(missing_ok=True)
    return stopped
