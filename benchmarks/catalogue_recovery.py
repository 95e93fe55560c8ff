"""Benchmark: recovery of the catalogue's single-host faults on the local target, repeated.

Brings up the local target, then injects each fault ``--repeat`` times through the same chaos
activities the experiments use:

- node-agent-kill: SIGKILL a node agent; *detection* is until the controller has released the
  lost node's servers, *recovery* until every server is Ready on a live node (the killed agent
  is restarted between injections);
- rolling-restart: each API replica from its stop until HAProxy has it back in rotation;
- bad-build-rollback: from deploying a build that fails readiness (2 s budget) until the
  previous build is back in rotation;
- disk-quota-fill: a tenant writing 1 MiB world files through the API, from the first write
  until the platform refuses one with 507 (a 16 MiB quota); then, after deleting one file, until
  a write is accepted again;
- cpu-hog: one CPU burnt for 5 s on the API's CPUs while a client lists servers through the load
  balancer every 20 ms: the p99 of that request before, during and in the 5 s after the hog
  (a hog has no recovery; the latency it costs is the figure);
- rate-limit-storm: one token storming the API for 3 s while the seeded tenant keeps working:
  the seeded tenant's refused requests (must be 0), and, for a token that was just refused with
  429, the time until the platform accepts its requests again.

Prints p50 and max per fault (``_figures``) and saves
``reports/bench/catalogue-recovery-<time>.json``.

    python benchmarks/catalogue_recovery.py --repeat 5
"""

from __future__ import annotations

import re
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

from _figures import Figures, start

from harness.chaos import _ledger
from harness.chaos.deploy import actions as deploy
from harness.chaos.local import actions as local
from harness.chaos.local import probes
from harness.chaos.resources import _tenants
from harness.chaos.resources import actions as resources
from harness.chaos.resources._tenants import Connection
from harness.engine import _seed
from harness.engine.timeline import Timeline
from harness.model import Endpoints
from harness.targets import LocalTarget, LocalTopology
from harness.util.http import request

RECOVERED = re.compile(r"detected after ([\d.]+) s, servers Ready elsewhere after ([\d.]+) s")
MIB = 1024 * 1024
QUOTA_MIB = 16
HOG_S = 5.0
POLL_S = 0.02


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


def _disk_fill(target_file: Path) -> tuple[float, float]:
    """(first write to the 507 s, deleting one filler file to an accepted write s)."""
    t0 = time.time()
    result = resources.fill_disk(str(target_file), file_bytes=MIB, max_bytes=64 * MIB)
    refused = time.time() - t0
    if result["refused_at_quota"] != 507:
        raise SystemExit(f"the full quota was not refused with 507: {result}")
    endpoints = Endpoints.read(target_file)
    filler = _tenants.load_result(endpoints, "disk-quota-fill.filler")
    assert filler is not None
    conn = Connection(endpoints.api_url, filler["token"], timeout_s=30.0)
    path = f"/v1/sessions/{filler['session']}/files"
    try:
        t1 = time.time()
        conn.send("DELETE", f"{path}/{filler['files'][0]}")
        deadline = time.monotonic() + 30
        while conn.send("PUT", f"{path}/again.bin", bytes(1024)).status not in (200, 201):
            if time.monotonic() > deadline:
                raise SystemExit("no write accepted within 30 s of freeing a file")
            time.sleep(POLL_S)
        freed = time.time() - t1
        conn.send("DELETE", f"{path}/again.bin")
    finally:
        conn.close()
    resources.remove_filler(str(target_file))
    return refused, freed


class _Latencies:
    """GET /v1/servers through the load balancer every POLL_S; (instant, seconds) of each."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.url = f"{endpoints.api_url}/v1/servers?limit=10"
        self.token = endpoints.tenant_token()
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.time()
            request("GET", self.url, timeout_s=5.0, token=self.token)
            self.samples.append((t0, time.time() - t0))
            self._stop.wait(POLL_S)

    def p99_ms(self, start: float, end: float) -> float:
        window = sorted(s for t, s in self.samples if start <= t < end)
        if not window:
            raise SystemExit("no latency sample in a cpu-hog window")
        return 1000 * window[min(len(window) - 1, int(0.99 * len(window)))]

    def __enter__(self) -> _Latencies:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10.0)


def _cpu_hog(target_file: Path) -> tuple[float, float, float]:
    """API p99 in ms (before, during, after) one CPU hogged for HOG_S on the API's CPUs."""
    with _Latencies(Endpoints.read(target_file)) as lat:
        time.sleep(HOG_S)
        hog = resources.cpu_hog(str(target_file), role="api", duration_s=HOG_S, cores=1)
        ended = time.time()
        time.sleep(HOG_S)
    start = float(hog["at"])
    return (
        lat.p99_ms(start - HOG_S, start),
        lat.p99_ms(start, ended),
        lat.p99_ms(ended, ended + HOG_S),
    )


def _storm(target_file: Path) -> tuple[float, float]:
    """(the seeded tenant's refused requests during a storm, a 429'd token's time to a 200)."""
    result = resources.rate_limit_storm(str(target_file), duration_s=3, workers=4)
    bystander_refused = sum(v for k, v in result["bystander_statuses"].items() if k != "200")
    endpoints = Endpoints.read(target_file)
    owner = resources._tenant_session(endpoints, "storm-recovery")
    conn = Connection(endpoints.api_url, owner["token"])
    path = f"/v1/sessions/{owner['session']}"
    try:
        for _ in range(5000):
            if conn.send("GET", path).status == 429:
                break
        else:
            raise SystemExit("5000 requests from one token were never refused with 429")
        refused_at = time.time()
        deadline = time.monotonic() + 30
        while conn.send("GET", path).status != 200:
            if time.monotonic() > deadline:
                raise SystemExit("a throttled token was not served again within 30 s")
            time.sleep(0.005)
        recovered = time.time() - refused_at
    finally:
        conn.close()
        resources._remove_tenant_session(endpoints, owner, files=[])
    return float(bystander_refused), recovered


def main() -> int:
    started_with = start("catalogue-recovery", __doc__)
    assert started_with is not None  # needs no root
    figures, repeat = started_with
    run_dir, n = figures.run_dir, repeat
    topology = LocalTopology(session_disk_quota_mib=QUOTA_MIB)
    started = time.monotonic()
    with LocalTarget(run_id=figures.run_id, run_dir=run_dir, topology=topology) as target:
        _seed.deploy_seeded(target, servers=10, held_sessions=2, ready_timeout_s=60)
        figures.value("topology up (smoke-sized, 10 servers)", time.monotonic() - started)
        target_file = run_dir / "target.json"
        try:
            _measure(figures, target, target_file, n)
        finally:
            _ledger.stop(Endpoints.read(target_file), role="api")
        down_started = time.monotonic()
    figures.value("topology down", time.monotonic() - down_started)
    figures.save(repeat=n)
    return 0


def _measure(figures: Figures, target: LocalTarget, target_file: Path, n: int) -> None:
    kills = [_node_kill(target, target_file) for _ in range(n)]
    figures.add(
        "node-agent-kill detection",
        [d for d, _ in kills],
        meaning="SIGKILL of a node agent until the controller released its servers",
    )
    figures.add(
        "node-agent-kill recovery",
        [r for _, r in kills],
        meaning="SIGKILL until every server is Ready on a live node",
    )
    rotations = [
        float(r["in_rotation_s"])
        for _ in range(n)
        for r in deploy.rolling_restart(str(target_file))["restarted"]
    ]
    figures.add(
        "rolling-restart per replica",
        rotations,
        meaning="a replica's stop until HAProxy has it back in rotation",
    )
    rollbacks = [
        float(
            deploy.rollback_on_failed_readiness(str(target_file), readiness_budget_s=2)[
                "rolled_back_after_s"
            ]
        )
        for _ in range(n)
    ]
    figures.add(
        "bad-build rollback",
        rollbacks,
        meaning="deploying a build that fails readiness (2 s budget) until the old one serves",
    )
    fills = [_disk_fill(target_file) for _ in range(n)]
    figures.add(
        "disk-quota-fill to 507",
        [f for f, _ in fills],
        meaning=f"first 1 MiB write until the {QUOTA_MIB} MiB quota is refused with 507",
    )
    figures.add(
        "disk-quota-fill write after cleanup",
        [c for _, c in fills],
        meaning="deleting one filler file until a write is accepted again",
    )
    hogs = [_cpu_hog(target_file) for _ in range(n)]
    for i, when in enumerate(("before", "during", "after")):
        figures.add(
            f"cpu-hog API p99 {when}",
            [h[i] for h in hogs],
            unit="ms",
            meaning=f"p99 of GET /v1/servers through the LB, {HOG_S:g} s {when} a "
            f"{HOG_S:g} s hog of 1 CPU",
        )
    storms = [_storm(target_file) for _ in range(n)]
    figures.add(
        "rate-limit-storm other tenant refused",
        [s for s, _ in storms],
        unit="req",
        meaning="the seeded tenant's non-200 answers during a 3 s storm by another token",
    )
    figures.add(
        "rate-limit-storm time to serve again",
        [r for _, r in storms],
        meaning="a token's first 429 until its next request is served (polled every 5 ms)",
    )


if __name__ == "__main__":
    sys.exit(main())
