"""Asyncio load for the refplat benchmarks: bulk server creation and allocate/end cycles.

Every request has a timeout; every loop is bounded by a count or a deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

REQUEST_TIMEOUT_S = 10.0


@dataclass
class LoadResult:
    """What one allocation run measured (latencies in seconds)."""

    duration_s: float
    allocate_latencies: list[float] = field(default_factory=list)
    end_latencies: list[float] = field(default_factory=list)
    allocated: int = 0
    ended: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of ``samples`` (0.0 when empty)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def _session(concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


async def create_tenants(
    api: str, *, admin_token: str, names: Sequence[str]
) -> list[tuple[str, str]]:
    """Create one tenant per name; return ``(tenant id, token)`` pairs."""
    out = []
    async with _session(4) as http:
        for name in names:
            headers = {"Authorization": f"Bearer {admin_token}"}
            async with http.post(f"{api}/v1/tenants", json={"name": name}, headers=headers) as resp:
                body = await resp.json()
                if resp.status != 201:
                    raise RuntimeError(f"creating tenant {name} answered {resp.status}: {body}")
                out.append((str(body["id"]), str(body["token"])))
    return out


async def create_servers(
    api: str, *, tokens: Sequence[str], count: int, concurrency: int = 16
) -> None:
    """Create ``count`` servers, spread round-robin over the tenants of ``tokens``."""
    queue = iter(itertools.islice(itertools.cycle(tokens), count))
    failures: Counter[int] = Counter()

    async def worker(http: aiohttp.ClientSession) -> None:
        for token in queue:
            headers = {"Authorization": f"Bearer {token}"}
            async with http.post(f"{api}/v1/servers", json={}, headers=headers) as resp:
                await resp.read()
                if resp.status != 201:
                    failures[resp.status] += 1

    async with _session(concurrency) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    if failures:
        raise RuntimeError(f"creating servers failed: {dict(failures)} (status: count)")


async def allocate_and_end(
    url: str,
    *,
    tokens: Sequence[str],
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    end: bool = True,
) -> LoadResult:
    """``concurrency`` workers allocate a session and end it, for ``duration_s`` after a warm-up.

    Only requests that start after the warm-up are counted. With ``end=False`` the sessions are
    kept (allocation from a pool of Ready servers, as a matchmaker does); a pool that runs dry
    shows as ``allocate 409`` errors.
    """
    loop = asyncio.get_running_loop()
    measure_from = loop.time() + warmup_s
    stop_at = measure_from + duration_s
    result = LoadResult(duration_s=duration_s)
    nonce = secrets.token_hex(4)  # idempotency keys never repeat across runs

    async def cycle(http: aiohttp.ClientSession, token: str, key: int) -> None:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"bench-{nonce}-{key}"}
        started = loop.time()
        counted = started >= measure_from
        async with http.post(f"{url}/v1/sessions", json={}, headers=headers) as resp:
            raw = await resp.read()
        if counted:
            result.allocate_latencies.append(loop.time() - started)
        if resp.status != 201:
            if counted:
                result.errors[f"allocate {resp.status}"] += 1
            return
        result.allocated += counted
        if not end:
            return
        started = loop.time()
        session_id = json.loads(raw)["id"]
        async with http.delete(f"{url}/v1/sessions/{session_id}", headers=headers) as resp:
            await resp.read()
        if counted:
            result.end_latencies.append(loop.time() - started)
            result.ended += resp.status == 200
            if resp.status != 200:
                result.errors[f"end {resp.status}"] += 1

    async def worker(http: aiohttp.ClientSession, index: int) -> None:
        token = tokens[index % len(tokens)]
        for n in itertools.count():
            if loop.time() >= stop_at:
                return
            try:
                await cycle(http, token, index * 1_000_000 + n)
            except (aiohttp.ClientError, TimeoutError) as exc:
                result.errors[type(exc).__name__] += 1

    async with _session(concurrency) as http:
        await asyncio.gather(*(worker(http, i) for i in range(concurrency)))
    return result


def run_load(
    url: str,
    *,
    tokens: Sequence[str],
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    end: bool = True,
) -> LoadResult:
    """Synchronous entry point of :func:`allocate_and_end`."""
    return asyncio.run(
        allocate_and_end(
            url,
            tokens=tokens,
            concurrency=concurrency,
            duration_s=duration_s,
            warmup_s=warmup_s,
            end=end,
        )
    )
