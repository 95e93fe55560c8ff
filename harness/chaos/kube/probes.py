"""Probes against the ``kube`` target: every game server placed in a serving Pod."""

from __future__ import annotations

import logging
import time

from kubernetes import client as k8s

from harness.chaos import _target
from harness.chaos.kube import _cluster
from harness.chaos.kube._cluster import PLACED, KubeRun, Placed

__all__ = ["gameservers_ready"]

log = logging.getLogger(__name__)

POLL_S = 0.25


def gameservers_ready(
    target_file: str = "", within_s: float = 30.0, fault_name: str = "", expected: int = 0
) -> bool:
    """True when, within ``within_s``, every seeded game server is Ready or Allocated in a
    Running, Ready Pod, and (after ``fault_name``) the servers it took have new Pods (new uids)
    on another Node than the one it drained or deleted.

    ``expected``: how many servers there must be (0: as many as there are). After a fault the
    instant this holds is recorded on the timeline as ``recovered``.
    """
    run = _cluster.load(target_file)
    taken = _cluster.victims(run, fault_name) if _pending(run, fault_name) else {}
    deadline = time.monotonic() + within_s
    with run.client() as api:
        core = k8s.CoreV1Api(api)
        while True:
            placed = _cluster.placed(run, core)
            wrong = _problems(placed, taken, expected)
            if not wrong:
                break
            if time.monotonic() >= deadline:
                log.warning("game servers not restored after %g s: %s", within_s, "; ".join(wrong))
                return False
            time.sleep(POLL_S)
    if taken:
        moved = ", ".join(
            f"{p.server_id} on {p.node}" for p in placed if p.server_id in taken["pods"]
        )
        _cluster.record(
            run,
            fault_name,
            "recovered",
            target=taken.get("node") or ", ".join(sorted(taken["pods"])),
            detail=f"all {len(placed)} servers Ready after {time.time() - taken['at']:.2f} s; "
            f"new Pods: {moved}",
        )
    return True


def _problems(placed: list[Placed], taken: dict[str, object], expected: int) -> list[str]:
    old_uids = taken.get("pods") or {}
    assert isinstance(old_uids, dict)
    node = taken.get("node") or ""
    wrong = []
    if expected and len(placed) != expected:
        wrong.append(f"{len(placed)} servers, {expected} expected")
    for p in placed:
        if p.state not in PLACED or not p.serving:
            wrong.append(f"{p.server_id} {p.state}, pod {'up' if p.serving else 'not serving'}")
        elif p.server_id in old_uids and p.pod.metadata.uid == old_uids[p.server_id]:
            wrong.append(f"{p.server_id} still in its old pod")
        elif p.server_id in old_uids and node and p.node == node:
            wrong.append(f"{p.server_id} back on {node}")
    return wrong


def _pending(run: KubeRun, fault_name: str) -> bool:
    """Whether ``fault_name`` was injected after its last recovery."""
    if not fault_name:
        return False
    events = [e for e in _target.timeline(run.endpoints).faults() if e.get("name") == fault_name]
    return bool(events) and events[-1].get("event") == "injected"
