"""Benchmark: Redis primary failover through Sentinel on the local target, repeated injections.

Brings up the local target with a Redis primary, two replicas and three Sentinels (and, for
comparison, times the same topology with a single Redis), then ``--repeat`` times: SIGKILL the
primary the Sentinels report (``harness.chaos.redis.actions.kill_primary``), and time

- the failover: until a majority of the Sentinels report another primary;
- API healthy: until ``/readyz`` answers 200 through the load balancer again (both replicas
  probed by HAProxy, so the blackbox probe sees the same);
- first write: until a session allocation is acknowledged again (``WAIT`` for a replica);

then restart the old primary as a replica (``restart_redis``) and wait for the Sentinels to see
it before the next round. Polls every 20 ms. Prints p50/max per figure (``_figures``) and
saves them to ``reports/bench/redis-failover-<time>.json``.

    python benchmarks/redis_failover.py --repeat 5
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from _figures import start

from harness.chaos.redis import actions
from harness.engine import _seed
from harness.model import Endpoints
from harness.targets import LocalTarget, LocalTopology
from harness.targets._redis import primary_address, sentinels_settled
from harness.util.http import request

POLL_S = 0.02
TIMEOUT_S = 60.0


def _until(what: str, ok: Callable[[], bool]) -> float:
    deadline = time.monotonic() + TIMEOUT_S
    while not ok():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {TIMEOUT_S:g} s")
        time.sleep(POLL_S)
    return time.time()


def _sentinels(endpoints: Endpoints) -> list[tuple[str, int]]:
    out = []
    for item in endpoints.extra["redis_sentinels"].split(","):
        host, _, port = item.rpartition(":")
        out.append((host, int(port)))
    return out


def _allocates(endpoints: Endpoints) -> bool:
    resp = request(
        "POST",
        f"{endpoints.api_url}/v1/sessions",
        timeout_s=2.0,
        token=endpoints.tenant_token(),
        payload={"region": "local"},
    )
    if resp.status != 201:
        return False
    sid = resp.json()["id"]
    request(
        "DELETE",
        f"{endpoints.api_url}/v1/sessions/{sid}",
        timeout_s=2.0,
        token=endpoints.tenant_token(),
    )
    return True


def _inject(endpoints: Endpoints, target_file: str) -> dict[str, float]:
    sentinels = _sentinels(endpoints)
    killed = actions.kill_primary(target_file=target_file)
    t0 = float(killed["at"])
    old = killed["address"]
    failover = _until(
        "the failover",
        lambda: (p := primary_address(sentinels)) is not None and f"{p[0]}:{p[1]}" != old,
    )
    healthy = _until(
        "API healthy",
        lambda: request("GET", f"{endpoints.api_url}/readyz", timeout_s=1.0).ok,
    )
    write = _until("an acknowledged write", lambda: _allocates(endpoints))
    actions.restart_redis(target_file=target_file)
    _until("the sentinels to settle", lambda: sentinels_settled(sentinels, replicas=2))
    return {"failover_s": failover - t0, "api_healthy_s": healthy - t0, "first_write_s": write - t0}


def _deploy_time(run_dir: Path, run_id: str, topology: LocalTopology) -> tuple[float, float]:
    started = time.monotonic()
    with LocalTarget(run_id=run_id, run_dir=run_dir, topology=topology) as target:
        target.deploy()
        up = time.monotonic() - started
        down_started = time.monotonic()
    return up, time.monotonic() - down_started


MEANINGS = {
    "failover_s": "SIGKILL of the primary until a majority of Sentinels report another",
    "api_healthy_s": "SIGKILL until /readyz answers 200 through the load balancer",
    "first_write_s": "SIGKILL until a session allocation is acknowledged (WAIT 1) again",
}


def main() -> int:
    started_with = start("redis-failover", __doc__, repeat=3)
    assert started_with is not None  # needs no root
    figures, repeat = started_with
    run_id, run_dir = figures.run_id, figures.run_dir
    plain = LocalTopology(redis_fsync="always")
    sentinel = LocalTopology(redis_fsync="always", redis_replicas=2, redis_sentinels=3)
    plain_up, plain_down = _deploy_time(run_dir / "plain", f"{run_id}-plain", plain)
    up_s, down_s = _deploy_time(run_dir / "sentinel-deploy", f"{run_id}-deploy", sentinel)
    with LocalTarget(run_id=run_id, run_dir=run_dir / "sentinel", topology=sentinel) as target:
        endpoints = _seed.deploy_seeded(target, servers=4, held_sessions=0, ready_timeout_s=60)
        target_file = str(Path(endpoints.run_dir) / "target.json")
        rounds = [_inject(endpoints, target_file) for _ in range(repeat)]
    for key, meaning in MEANINGS.items():
        name = f"redis-primary-failover {key.removesuffix('_s').replace('_', ' ')}"
        figures.add(name, [r[key] for r in rounds], meaning=meaning)
    figures.value("deploy up, single redis", plain_up, meaning="deploy only, no seeding")
    figures.value("deploy down, single redis", plain_down)
    figures.value("deploy up, redis +2 replicas/3 sentinels", up_s, meaning="deploy only")
    figures.value("deploy down, redis +2 replicas/3 sentinels", down_s)
    figures.save(repeat=repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
