"""Rate limits: GCRA in Redis shared by replicas, and 429s from a real api process."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from refplat.ratelimit import RateLimit, RateLimiter, Refusal, Scope
from refplat.store import Store, connect
from tests.integration.test_refplat_platform import ADMIN_TOKEN, HTTP_TIMEOUT_S, Launcher, call

pytestmark = pytest.mark.integration


def replicas(redis_url: str, count: int, *, token: str, session: str) -> Any:
    """Limiters of ``count`` replicas, each on its own Redis connection."""

    async def run(
        per_token: RateLimit, per_session: RateLimit, calls: list[tuple[int, str | None]]
    ) -> list[Refusal | None]:
        stores = [Store(connect(redis_url)) for _ in range(count)]
        try:
            limiters = [
                RateLimiter(store=s, per_token=per_token, per_session=per_session) for s in stores
            ]
            return [
                await limiters[replica].check(token=token, session=sess) for replica, sess in calls
            ]
        finally:
            for store in stores:
                await store.redis.aclose()

    return run


def test_replicas_share_one_budget_of_burst_requests_then_refuse_for_one_interval(
    redis_url: str,
) -> None:
    check = replicas(redis_url, 3, token="tok", session="s")
    calls: list[tuple[int, str | None]] = [(i % 3, None) for i in range(6)]

    results = asyncio.run(check(RateLimit(rate=2, burst=5), RateLimit(0, 0), calls))

    assert [None] * 5 == results[:5]
    refusal = results[5]
    assert refusal is not None
    assert Scope.TOKEN == refusal.scope
    assert 0.4 < refusal.retry_after_s <= 0.5


def test_a_refusal_by_the_session_limit_costs_the_token_nothing(redis_url: str) -> None:
    check = replicas(redis_url, 1, token="tok", session="s")
    calls: list[tuple[int, str | None]] = [(0, "s"), (0, "s"), (0, "s"), (0, None), (0, None)]
    calls.append((0, None))

    results = asyncio.run(check(RateLimit(1, 3), RateLimit(1, 1), calls))

    scopes = [r.scope if r else None for r in results]
    assert [None, Scope.SESSION, Scope.SESSION, None, None, Scope.TOKEN] == scopes


def test_the_budget_refills_at_the_rate(redis_url: str) -> None:
    async def run() -> list[bool]:
        store = Store(connect(redis_url))
        try:
            limiter = RateLimiter(
                store=store, per_token=RateLimit(20, 1), per_session=RateLimit(0, 0)
            )
            first = await limiter.check(token="t", session=None)
            second = await limiter.check(token="t", session=None)
            await asyncio.sleep(0.06)
            third = await limiter.check(token="t", session=None)
            return [first is None, second is None, third is None]
        finally:
            await store.redis.aclose()

    assert [True, False, True] == asyncio.run(run())


def get(url: str, token: str) -> tuple[int, str | None, Any]:
    """GET ``url``; return (status, Retry-After header, decoded JSON body)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.headers.get("Retry-After"), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("Retry-After"), json.loads(exc.read())


def test_the_api_answers_429_with_retry_after_per_token_and_per_session(
    launcher: Launcher,
) -> None:
    args = ["--instance", "api-0", "--admin-token-file", str(launcher.token_file)]
    limits = ["--rate-limit-per-token", "1:3", "--rate-limit-per-session", "0.5:2"]
    api = launcher.start("api", "api", *args, *limits)[1]
    launcher.wait_healthy(api)
    acme = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "acme"})[1]
    other = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "b"})[1]

    by_token = [get(f"{api}/v1/servers", acme["token"]) for _ in range(4)]
    by_session = [get(f"{api}/v1/sessions/s-1", other["token"]) for _ in range(3)]
    with urllib.request.urlopen(f"{api}/metrics", timeout=HTTP_TIMEOUT_S) as response:
        metrics = response.read().decode()

    assert [200, 200, 200, 429] == [status for status, _, _ in by_token]
    assert [404, 404, 429] == [status for status, _, _ in by_session]
    assert ("1", "2") == (by_token[3][1], by_session[2][1])
    assert "rate limit per token" in by_token[3][2]["error"]
    assert "rate limit per session" in by_session[2][2]["error"]
    assert 'refplat_api_rate_limited_total{scope="token"} 1.0' in metrics.splitlines()
    assert 'refplat_api_rate_limited_total{scope="session"} 1.0' in metrics.splitlines()
