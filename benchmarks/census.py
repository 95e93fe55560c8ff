"""Benchmark: what the leader's per-pass census costs as stored sessions pile up.

Starts a real redis-server, stores N session records (half Active with an expiry in the
sorted set, half Ended) and times :func:`refplat.census.take_census` (sessions by state from
two set sizes, plus the TTL-prune lag) against the alternative it avoids, reading every
session's state (one pipelined HGET per session); median of ``--repeat`` runs per N.
Prints the figures and saves them to ``reports/bench/census-<time>.json``.

    python -m benchmarks.census --sessions 1000 10000 50000   (from the repository root)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness.util.scratch import scratch_redis
from refplat.census import take_census
from refplat.store import PREFIX, Store, connect

FILL_BATCH = 1000


async def fill(store: Store, count: int) -> None:
    """Store ``count`` session records (measurement data, written directly)."""
    now = await store.redis_time()
    for start in range(0, count, FILL_BATCH):
        async with store.redis.pipeline(transaction=False) as pipe:
            for i in range(start, min(count, start + FILL_BATCH)):
                sid = f"s-{i}"
                state = "Active" if i % 2 else "Ended"
                pipe.hset(f"{PREFIX}session:{sid}", mapping={"id": sid, "state": state})
                pipe.sadd(f"{PREFIX}sessions", sid)
                if state == "Active":
                    pipe.zadd(f"{PREFIX}sessions:active", {sid: now + 3600})
            await pipe.execute()


async def measure(url: str, count: int, repeat: int) -> dict[str, float]:
    store = Store(connect(url))
    try:
        await store.redis.flushdb()
        await fill(store, count)
        census, scan = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            await take_census(store, nodes=[], servers=[], now=await store.redis_time())
            census.append(time.perf_counter() - started)
            started = time.perf_counter()
            await scan_states(store)
            scan.append(time.perf_counter() - started)
    finally:
        await store.redis.aclose()
    return {
        "sessions": count,
        "census_median_ms": statistics.median(census) * 1000,
        "full_scan_median_ms": statistics.median(scan) * 1000,
    }


async def scan_states(store: Store) -> int:
    """The avoided alternative: read every stored session's state."""
    ids = [str(sid) for sid in await store.redis.smembers(f"{PREFIX}sessions")]
    seen = 0
    for start in range(0, len(ids), FILL_BATCH):
        async with store.redis.pipeline(transaction=False) as pipe:
            for sid in ids[start : start + FILL_BATCH]:
                pipe.hget(f"{PREFIX}session:{sid}", "state")
            seen += len(await pipe.execute())
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, scratch_redis(Path(tmp)) as url:
        rows = [asyncio.run(measure(url, n, args.repeat)) for n in args.sessions]
    for row in rows:
        sessions, census, scan = (
            row["sessions"],
            row["census_median_ms"],
            row["full_scan_median_ms"],
        )
        print(f"{sessions:>7} sessions: census {census:.2f} ms, full scan {scan:.1f} ms (medians)")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"census-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps({"benchmark": "census", "rows": rows}, indent=2) + "\n")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
