"""Benchmark: recovery of the catalogue's single-host faults on the local target, repeated.

Brings up the local target, then injects each fault ``--repeat`` times through the same chaos
activities the experiments use:

- node-agent-kill: SIGKILL a node agent; *detection* is until the controller has released the
  lost node's servers, *recovery* until every server is Ready on a live node (the killed agent
  is restarted between injections);
- rolling-restart: each API replica from its stop until HAProxy has it back in rotation;
- bad-build-rollback: from deploying a build that fails readiness (2 s budget) until the
  previous build is back in rotation.

Prints p50 and max per fault and saves ``reports/bench/catalogue-recovery-<time>.json``.

    python benchmarks/catalogue_recovery.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from harness.chaos import _ledger
from harness.chaos.deploy import actions as deploy
from harness.chaos.local import actions as local
from harness.chaos.local import probes
from harness.engine import _seed
from harness.engine.timeline import Timeline
from harness.model import Endpoints
from harness.targets import LocalTarget, LocalTopology

RECOVERED = re.compile(r"detected after ([\d.]+) s, servers Ready elsewhere after ([\d.]+) s")


def _stats(samples: list[float]) -> dict[str, object]:
    return {
        "samples_s": [round(s, 3) for s in samples],
        "p50_s": round(statistics.median(samples), 3),
        "max_s": round(max(samples), 3),
    }


def _node_kill(target: LocalTarget, target_file: Path) -> tuple[float, float]:
    killed = local.kill_node_agent(str(target_file))
    if not probes.servers_ready_elsewhere(str(target_file), within_s=40):
        raise SystemExit("servers were not Ready elsewhere within 40 s")
    event = Timeline(Path(target.endpoints.timeline_file)).faults()[-1]
    found = RECOVERED.search(event.get("detail", ""))
    if not found:
        raise SystemExit(f"no recovery recorded: {event}")
    tenant = Endpoints.read(target_file).tenant_token_file
    endpoints = target.restart(killed["killed"])
    replace(endpoints, tenant_token_file=tenant).write(target_file)
    return float(found.group(1)), float(found.group(2))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    args = parser.parse_args()
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)
    run_dir = (args.out / f"catalogue-recovery-{run_id}").resolve()
    figures: dict[str, dict[str, object]] = {}
    started = time.monotonic()
    with LocalTarget(run_id=run_id, run_dir=run_dir, topology=LocalTopology()) as target:
        endpoints = _seed.deploy_seeded(target, servers=10, held_sessions=2, ready_timeout_s=60)
        up_s = time.monotonic() - started
        target_file = run_dir / "target.json"
        try:
            kills = [_node_kill(target, target_file) for _ in range(args.repeat)]
            figures["node-agent-kill detection"] = _stats([d for d, _ in kills])
            figures["node-agent-kill recovery"] = _stats([r for _, r in kills])
            rotations = [
                float(r["in_rotation_s"])
                for _ in range(args.repeat)
                for r in deploy.rolling_restart(str(target_file))["restarted"]
            ]
            figures["rolling-restart per replica"] = _stats(rotations)
            rollbacks = [
                float(
                    deploy.rollback_on_failed_readiness(str(target_file), readiness_budget_s=2)[
                        "rolled_back_after_s"
                    ]
                )
                for _ in range(args.repeat)
            ]
            figures["bad-build-rollback"] = _stats(rollbacks)
        finally:
            _ledger.stop(Endpoints.read(target_file), role="api")
        down_started = time.monotonic()
    result = {
        "benchmark": "catalogue-recovery",
        "run_id": run_id,
        "repeat": args.repeat,
        "topology_up_s": round(up_s, 2),
        "topology_down_s": round(time.monotonic() - down_started, 2),
        "api_url": endpoints.api_url,
        "faults": figures,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"catalogue-recovery-{run_id}.json"
    path.write_text(json.dumps(result, indent=2))
    for name, fig in figures.items():
        print(
            f"{name:30} p50 {fig['p50_s']:6.2f} s  max {fig['max_s']:6.2f} s  "
            f"samples {fig['samples_s']}"
        )
    print(f"topology up {result['topology_up_s']} s, down {result['topology_down_s']} s")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
