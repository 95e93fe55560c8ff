"""Benchmark: recovery from the loss of a whole region (the ``local-regions`` profile, root only).

Each injection gets a fresh two-region topology (eu and us, the Redis primary alone in eu), so
every outage starts from the same layout: after one outage the primary stays in us, and a second
cut of eu would no longer include a Redis failover. Per injection:

- bring the topology up with the profile's servers and hold 8 sessions (some land in eu);
- cut eu off for 30 s with the experiment's own action (``region_outage``, in a thread) while
  this process probes ``/healthz`` through the global balancer every 50 ms;
- figures: the API's time to recovery through the global balancer (cut until the last failed
  probe), the time until every session noted in eu was re-placed in us, the fail-back after the
  heal (eu's balancer UP again), the failed probes, and the held sessions not Active afterwards
  (a lost acknowledged session; must be 0);
- tear the topology down (its time up and down are figures too).

    sudo python benchmarks/region_outage.py --repeat 5
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from _figures import Figures, start

from harness.chaos.network.region import region_outage
from harness.config import load_settings
from harness.engine import _seed
from harness.model import Endpoints
from harness.targets import LocalTarget, LocalTopology
from harness.util.http import request

PROFILE = "local-regions"
REGION = "eu"
CUT_S = 30.0
FAILBACK_S = 60.0
HELD = 8
POLL_S = 0.05


class _GlobalProber:
    """GET /healthz through the global balancer every POLL_S; when probes failed, and how many."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.sent = self.failed = 0
        self.last_failure = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            if not request("GET", f"{self.api_url}/healthz", timeout_s=1.0).ok:
                self.failed += 1
                self.last_failure = time.time()
            self._stop.wait(POLL_S)

    def __enter__(self) -> _GlobalProber:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)


def _once(figures: Figures, i: int) -> dict[str, float]:
    settings = load_settings(PROFILE, repo_root=Path.cwd(), env={}, overrides=[])
    topology = LocalTopology.from_settings(settings)
    run_id = f"{figures.run_id}-{i}"
    run_dir = figures.run_dir / run_id
    started = time.monotonic()
    with LocalTarget(run_id=run_id, run_dir=run_dir, topology=topology) as target:
        endpoints = _seed.deploy_seeded(
            target,
            servers=settings.topology.game_servers,
            held_sessions=HELD,
            ready_timeout_s=settings.timeouts.ready_s,
        )
        up = time.monotonic() - started
        held = _seed.active_sessions(endpoints)
        target_file = run_dir / "target.json"
        outcome: dict[str, Any] = {}
        with _GlobalProber(endpoints.api_url) as prober:
            t0 = time.time()
            fault = threading.Thread(
                target=lambda: outcome.update(
                    region_outage(
                        str(target_file), region=REGION, duration_s=CUT_S, failback_s=FAILBACK_S
                    )
                ),
                daemon=True,
            )
            fault.start()
            fault.join(CUT_S + FAILBACK_S + 60)
        if not outcome:
            raise SystemExit(f"injection {i}: the region outage action did not complete")
        _, lost = _seed.preserved_share(Endpoints.read(target_file), held)
        down_started = time.monotonic()
    down = time.monotonic() - down_started
    replaced, failback = outcome["replaced_after_s"], outcome["failed_back_after_s"]
    if replaced is None or failback is None:
        raise SystemExit(f"injection {i}: not recovered: {outcome}")
    mttr = max(prober.last_failure - t0, 0.0) if prober.failed else 0.0
    print(
        f"  injection {i}: API back after {mttr:.2f} s ({prober.failed}/{prober.sent} probes "
        f"failed), {outcome['sessions_noted']} eu sessions re-placed after {replaced:.2f} s, "
        f"failed back {failback:.2f} s after the heal, {len(lost)} held sessions lost",
        flush=True,
    )
    return {
        "mttr": mttr,
        "replaced": float(replaced),
        "failback": float(failback),
        "failed": float(prober.failed),
        "noted": float(outcome["sessions_noted"]),
        "lost": float(len(lost)),
        "up": up,
        "down": down,
    }


def main() -> int:
    started_with = start("region-outage", __doc__, needs_root="regions need network namespaces")
    if started_with is None:
        return 0
    figures, repeat = started_with
    runs = [_once(figures, i) for i in range(1, repeat + 1)]

    def column(key: str) -> list[float]:
        return [r[key] for r in runs]

    figures.add(
        "region-outage: API back through the global balancer",
        column("mttr"),
        meaning=f"cut of {REGION} until the last failed /healthz (every {POLL_S * 1000:.0f} ms)",
    )
    figures.add(
        "region-outage: sessions of the region re-placed",
        column("replaced"),
        meaning="cut until every session noted on the region's nodes is Allocated elsewhere",
    )
    figures.add(
        "region-outage: fail-back",
        column("failback"),
        meaning="heal until the region's balancer and replicas are UP again",
    )
    figures.add("region-outage: failed global probes", column("failed"), unit="probes")
    figures.add("region-outage: sessions noted in the region", column("noted"), unit="sessions")
    figures.add("region-outage: held sessions lost", column("lost"), unit="sessions")
    figures.add("topology up (local-regions)", column("up"))
    figures.add("topology down (local-regions)", column("down"))
    figures.save(repeat=repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
