"""Benchmark: recovery from network partitions on the namespaced local target (root only).

Brings up the local target with each host in its own network namespace, then ``--repeat`` times
each (the partition runs in a thread through the same chaos activities the experiments use,
while this process watches):

- node-partition: the node agent the action chooses (the one with the most game servers: no
  session is held, so none is long-lived) is cut off from Redis for 20 s (it stays alive but
  its heartbeats stop): until the controller released the node's servers, and until every
  server is Ready on another node;
- api-replica-partition: ``api-1`` cut off from the load balancer for 8 s: from the cut until
  HAProxy marks it DOWN, from the heal until it is UP again, and the requests through the load
  balancer that failed meanwhile (one every 20 ms).

Prints p50/max per fault (``_figures``) and saves
``reports/bench/partition-recovery-<time>.json``.

    sudo python benchmarks/partition_recovery.py --repeat 5
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from _figures import Figures, start
from recovery import _Prober, _until_lb

from harness.chaos.local import actions as local
from harness.chaos.local import probes
from harness.chaos.network import actions as network
from harness.engine import _seed
from harness.model import Endpoints
from harness.targets import LocalTarget, LocalTopology

NODE_CUT_S = 20.0
API_CUT_S = 8.0
TIMEOUT_S = 60.0
POLL_S = 0.1


class _InThread:
    """Run a blocking fault action in a thread; ``result()`` waits for it (errors re-raised)."""

    def __init__(self, fn: Any, **kwargs: Any) -> None:
        self.value: dict[str, Any] = {}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, kwargs), daemon=True)
        self._thread.start()

    def _run(self, fn: Any, kwargs: dict[str, Any]) -> None:
        try:
            self.value = fn(**kwargs)
        except BaseException as exc:  # handed to the caller by result()
            self.error = exc

    def result(self, timeout_s: float) -> dict[str, Any]:
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise SystemExit(f"the fault action did not return within {timeout_s:g} s")
        if self.error is not None:
            raise self.error
        return self.value


def _node_partition(target_file: Path) -> tuple[float, float]:
    """(cut until the node's servers are released s, cut until all are Ready elsewhere s)."""
    endpoints = Endpoints.read(target_file)
    node = local._choose_agent(endpoints)[0].name
    placed = [
        s
        for s in probes._all_servers(endpoints)
        if s.get("node") == node and s["state"] in probes.PLACED
    ]
    if not placed:
        raise SystemExit(f"the action would cut {node}, which runs no game server: no figure")
    t0 = time.time()
    fault = _InThread(
        local.partition_node_agent,
        target_file=str(target_file),
        from_hosts=["redis"],
        duration_s=NODE_CUT_S,
        fault_name="node-partition",
    )
    released = replaced = 0.0
    deadline = time.monotonic() + TIMEOUT_S
    while not replaced:
        servers = probes._all_servers(endpoints)
        on_node = [s for s in servers if s.get("node") == node and s["state"] in probes.PLACED]
        now = time.time()
        if servers and not on_node:
            released = released or now
            if all(s["state"] in probes.SETTLED for s in servers):
                replaced = now
        if time.monotonic() > deadline:
            raise SystemExit(f"the servers of {node} were not Ready elsewhere in {TIMEOUT_S:g} s")
        time.sleep(POLL_S)
    fault.result(NODE_CUT_S + 30)
    return released - t0, replaced - t0


def _api_partition(target_file: Path) -> tuple[float, float, int]:
    """(cut until HAProxy marks api-1 DOWN s, heal until UP s, failed requests)."""
    endpoints = Endpoints.read(target_file)
    with _Prober(endpoints.api_url) as prober:
        t0 = time.time()
        fault = _InThread(
            network.partition_hosts,
            target_file=str(target_file),
            hosts=["api-1"],
            from_hosts=["lb"],
            duration_s=API_CUT_S,
            fault_name="api-replica-partition",
        )
        down = _until_lb(endpoints, "api-1", "DOWN") - t0
        fault.result(API_CUT_S + 30)
        healed = time.time()
        up = _until_lb(endpoints, "api-1", "UP") - healed
    return down, up, prober.failed


def main() -> int:
    started_with = start(
        "partition-recovery", __doc__, needs_root="partitions need network namespaces"
    )
    if started_with is None:
        return 0
    figures, repeat = started_with
    topology = LocalTopology(network="netns")
    started = time.monotonic()
    with LocalTarget(run_id=figures.run_id, run_dir=figures.run_dir, topology=topology) as target:
        _seed.deploy_seeded(target, servers=10, held_sessions=0, ready_timeout_s=90)
        figures.value("topology up (netns, 10 servers)", time.monotonic() - started)
        target_file = figures.run_dir / "target.json"
        try:
            _measure(figures, target_file, repeat)
        finally:
            network.heal_all(str(target_file))
        down_started = time.monotonic()
    figures.value("topology down (netns)", time.monotonic() - down_started)
    figures.save(repeat=repeat)
    return 0


def _measure(figures: Figures, target_file: Path, n: int) -> None:
    cuts = [_api_partition(target_file) for _ in range(n)]
    figures.add(
        "api-replica-partition out of rotation",
        [c[0] for c in cuts],
        meaning=f"api-1 cut from the LB ({API_CUT_S:g} s) until HAProxy marks it DOWN",
    )
    figures.add(
        "api-replica-partition back after heal",
        [c[1] for c in cuts],
        meaning="the heal until HAProxy marks api-1 UP again",
    )
    figures.add(
        "api-replica-partition failed requests",
        [float(c[2]) for c in cuts],
        unit="req",
        meaning="failed GET /healthz through the LB (one every 20 ms) during cut and heal",
    )
    nodes = [_node_partition(target_file) for _ in range(n)]
    figures.add(
        "node-partition detection",
        [d for d, _ in nodes],
        meaning=f"a node agent cut from Redis ({NODE_CUT_S:g} s) until its servers are released",
    )
    figures.add(
        "node-partition recovery",
        [r for _, r in nodes],
        meaning="the cut until every server is Ready on another node",
    )


if __name__ == "__main__":
    sys.exit(main())
