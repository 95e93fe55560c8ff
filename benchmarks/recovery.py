"""Benchmark: recovery from process faults on the local target, repeated injections.

Brings up the local target with enough controller replicas to lose one per kill, then injects
each fault ``--repeat`` times:

- controller-leader-kill (SIGKILL) and controller-leader-freeze (SIGSTOP for longer than the
  lease; the thawed one is fenced): from the signal to the first completed reconcile by the new
  leader, read from the controllers' own
  ``refplat_controller_leader_first_reconcile_timestamp_seconds``;
- api-replica-kill (SIGKILL of one API replica, restarted as a service manager would): from the
  kill until HAProxy has it out of rotation, and until the restarted replica is back in
  rotation; and the requests through the load balancer that failed meanwhile (a client probing
  every 20 ms: HAProxy's retries should hide the dead replica).

Prints p50/max per fault (``_figures``) and saves ``reports/bench/recovery-<time>.json``.

    python benchmarks/recovery.py --repeat 5
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from _figures import start

from harness.chaos.deploy._replicas import lb_states
from harness.chaos.local import actions as local
from harness.engine import _seed
from harness.model import Endpoints, ProcessInfo
from harness.targets import LocalTarget, LocalTopology
from harness.util.http import request

GAUGE = re.compile(r"^refplat_controller_leader_first_reconcile_timestamp_seconds (\S+)$", re.M)
FREEZE_S = 8.0
TIMEOUT_S = 30.0
POLL_S = 0.02


def _status(proc: ProcessInfo) -> dict[str, object] | None:
    resp = request("GET", f"{proc.url}/status", timeout_s=0.5)
    return resp.json() if resp.ok else None


def _leader(endpoints: Endpoints) -> ProcessInfo:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        for proc in endpoints.by_role("controller"):
            status = _status(proc)
            if status and status.get("leader"):
                return proc
        time.sleep(0.1)
    raise SystemExit("no controller became leader")


def _recovered_at(endpoints: Endpoints, *, after: float, exclude: str) -> float:
    """First reconcile instant of a leader other than ``exclude`` that began after ``after``."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        for proc in endpoints.by_role("controller"):
            if proc.name == exclude:
                continue
            resp = request("GET", f"{proc.url}/metrics", timeout_s=0.5)
            found = GAUGE.search(resp.body.decode()) if resp.ok else None
            if found and float(found.group(1)) > after:
                return float(found.group(1))
        time.sleep(0.05)
    raise SystemExit(f"no new leader reconciled within {TIMEOUT_S:g} s")


def _controller_fault(endpoints: Endpoints, kind: str) -> float:
    leader = _leader(endpoints)
    t0 = time.time()
    os.kill(leader.pid, signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
    try:
        return _recovered_at(endpoints, after=t0, exclude=leader.name) - t0
    finally:
        if kind == "freeze":
            time.sleep(max(0.0, FREEZE_S - (time.time() - t0)))
            os.kill(leader.pid, signal.SIGCONT)


def _until_lb(endpoints: Endpoints, server: str, state: str) -> float:
    deadline = time.monotonic() + TIMEOUT_S
    while lb_states(endpoints).get(server) != state:
        if time.monotonic() > deadline:
            raise SystemExit(f"HAProxy did not mark {server} {state} within {TIMEOUT_S:g} s")
        time.sleep(POLL_S)
    return time.time()


class _Prober:
    """GET /healthz through the load balancer every POLL_S until stopped; counts failures."""

    def __init__(self, api_url: str) -> None:
        self.api_url, self.sent, self.failed = api_url, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            self.failed += not request("GET", f"{self.api_url}/healthz", timeout_s=2.0).ok
            self._stop.wait(POLL_S)

    def __enter__(self) -> _Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)


def _api_kill(target: LocalTarget, target_file: Path) -> tuple[float, float, int]:
    """Kill one API replica, restart it; (out of rotation s, back in rotation s, failures)."""
    endpoints = Endpoints.read(target_file)
    with _Prober(endpoints.api_url) as prober:
        killed = local.kill_process(str(target_file), role="api", fault_name="api-replica-kill")
        name, t0 = str(killed["signalled"]), float(killed["at"])
        out = _until_lb(endpoints, name, "DOWN") - t0
        restarted = target.restart(name)
        back = _until_lb(restarted, name, "UP") - t0
    replace(restarted, tenant_token_file=endpoints.tenant_token_file).write(target_file)
    return out, back, prober.failed


def main() -> int:
    started_with = start("recovery", __doc__)
    assert started_with is not None  # needs no root
    figures, repeat = started_with
    topology = LocalTopology(controller_replicas=repeat + 2, node_agents=1)
    started = time.monotonic()
    with LocalTarget(run_id=figures.run_id, run_dir=figures.run_dir, topology=topology) as target:
        endpoints = _seed.deploy_seeded(target, servers=2, held_sessions=0, ready_timeout_s=60)
        figures.value("topology up (7 controllers, 1 agent)", time.monotonic() - started)
        target_file = figures.run_dir / "target.json"
        for kind in ("kill", "freeze"):
            samples = [_controller_fault(endpoints, kind) for _ in range(repeat)]
            figures.add(
                f"controller-leader-{kind}",
                samples,
                meaning=f"SIG{'KILL' if kind == 'kill' else 'STOP'} of the leader to the first "
                "reconcile by the new leader",
            )
        kills = [_api_kill(target, target_file) for _ in range(repeat)]
        figures.add(
            "api-replica-kill out of rotation",
            [k[0] for k in kills],
            meaning="SIGKILL of an API replica until HAProxy marks it DOWN",
        )
        figures.add(
            "api-replica-kill back in rotation",
            [k[1] for k in kills],
            meaning="SIGKILL until the restarted replica is UP in HAProxy",
        )
        figures.add(
            "api-replica-kill failed requests",
            [float(k[2]) for k in kills],
            unit="req",
            meaning="failed GET /healthz through the LB (one every 20 ms) during the kill",
        )
        down_started = time.monotonic()
    figures.value("topology down", time.monotonic() - down_started)
    figures.save(repeat=repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
