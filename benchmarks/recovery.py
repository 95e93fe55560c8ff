"""Benchmark: controller recovery per fault type on the local target, repeated injections.

Brings up the local target with enough controller replicas to lose one per kill, then injects
each fault ``--repeat`` times: SIGKILL of the leader (a new leader must take over) and SIGSTOP
of the leader for longer than its lease (a standby takes over; the thawed one is fenced).
Recovery is the time from the signal to the first completed reconcile by the new leader, read
from the controllers' own ``refplat_controller_leader_first_reconcile_timestamp_seconds``.
Prints the figures and saves them to ``reports/bench/recovery-<time>.json``.

    python benchmarks/recovery.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import statistics
import sys
import time
from pathlib import Path

from harness.engine import _seed
from harness.model import Endpoints, ProcessInfo
from harness.targets import LocalTarget, LocalTopology
from harness.util.http import request

GAUGE = re.compile(r"^refplat_controller_leader_first_reconcile_timestamp_seconds (\S+)$", re.M)
FREEZE_S = 8.0
TIMEOUT_S = 30.0


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


def _inject(endpoints: Endpoints, kind: str) -> float:
    leader = _leader(endpoints)
    t0 = time.time()
    os.kill(leader.pid, signal.SIGKILL if kind == "kill" else signal.SIGSTOP)
    try:
        return _recovered_at(endpoints, after=t0, exclude=leader.name) - t0
    finally:
        if kind == "freeze":
            time.sleep(max(0.0, FREEZE_S - (time.time() - t0)))
            os.kill(leader.pid, signal.SIGCONT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    args = parser.parse_args()
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)
    run_dir = (args.out / f"recovery-{run_id}").resolve()
    topology = LocalTopology(controller_replicas=args.repeat + 2, node_agents=1)
    figures: dict[str, dict[str, object]] = {}
    started = time.monotonic()
    with LocalTarget(run_id=run_id, run_dir=run_dir, topology=topology) as target:
        endpoints = _seed.deploy_seeded(target, servers=2, held_sessions=0, ready_timeout_s=60)
        up_s = time.monotonic() - started
        for kind in ("freeze", "kill"):
            samples = [_inject(endpoints, kind) for _ in range(args.repeat)]
            figures[f"controller-leader-{kind}"] = {
                "samples_s": [round(s, 3) for s in samples],
                "p50_s": round(statistics.median(samples), 3),
                "p95_s": round(sorted(samples)[max(0, round(0.95 * len(samples)) - 1)], 3),
                "max_s": round(max(samples), 3),
            }
        down_started = time.monotonic()
    result = {
        "benchmark": "recovery",
        "run_id": run_id,
        "repeat": args.repeat,
        "topology_up_s": round(up_s, 2),
        "topology_down_s": round(time.monotonic() - down_started, 2),
        "faults": figures,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"recovery-{run_id}.json"
    path.write_text(json.dumps(result, indent=2))
    for name, fig in figures.items():
        print(
            f"{name:26} p50 {fig['p50_s']:6.2f} s  p95 {fig['p95_s']:6.2f} s  "
            f"max {fig['max_s']:6.2f} s  samples {fig['samples_s']}"
        )
    print(f"topology up {result['topology_up_s']} s, down {result['topology_down_s']} s")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
