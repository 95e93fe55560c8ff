"""Rate limits per token and per session, shared by every api replica (GCRA in Redis).

The generic cell rate algorithm keeps one number per key, the theoretical arrival time
(TAT) of the next request. A limit ``RATE:BURST`` lets ``BURST`` requests through at once
and then one every ``1/RATE`` seconds. One Lua script checks every key of a request against
Redis's clock (``TIME``, so replicas with skewed clocks agree) and charges them only when
all of them allow it: a request refused by its session's limit costs its token nothing.
Keys expire when their TAT has passed, so idle keys leave nothing behind.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from refplat.metrics import ApiMetrics
from refplat.middleware import Handler, bearer_token, error
from refplat.store import PREFIX, Store, token_hash

SESSION_ROUTE_PREFIX = "/v1/sessions/{id}"

GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = #ARGV / 3
local tats = {}
for i = 1, n do
  local key = ARGV[3 * i - 2]
  local interval, burst = tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  local allow_at = tat + interval - burst * interval
  if allow_at > now then return {i, string.format('%.6f', allow_at - now)} end
  tats[i] = tat + interval
end
for i = 1, n do
  local ttl_ms = math.max(1, math.ceil((tats[i] - now) * 1000))
  redis.call('SET', ARGV[3 * i - 2], string.format('%.6f', tats[i]), 'PX', ttl_ms)
end
return {0, '0'}
"""


class Scope(enum.StrEnum):
    """What a limit is counted against."""

    TOKEN = "token"
    SESSION = "session"


@dataclass(frozen=True)
class RateLimit:
    """``rate`` requests per second with bursts of up to ``burst``; rate 0 turns it off."""

    rate: float
    burst: int

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Parse ``RPS:BURST`` (or ``0``, off); raise ValueError naming the bad text."""
        rate_text, sep, burst_text = text.partition(":")
        try:
            rate = float(rate_text)
            burst = int(burst_text) if sep else (0 if rate == 0 else math.ceil(rate))
        except ValueError:
            message = f"expected RPS:BURST such as 200:400 (or 0 for off), got {text!r}"
            raise ValueError(message) from None
        if not math.isfinite(rate) or rate < 0 or burst < 0 or (rate > 0 and burst < 1):
            raise ValueError(f"expected RPS >= 0 and BURST >= 1 in RPS:BURST, got {text!r}")
        return cls(rate=rate, burst=burst)

    @property
    def enabled(self) -> bool:
        """Whether this limit refuses anything at all."""
        return self.rate > 0


OFF = RateLimit(rate=0, burst=0)
DEFAULT_PER_TOKEN = RateLimit(rate=200, burst=400)
DEFAULT_PER_SESSION = RateLimit(rate=50, burst=100)


@dataclass(frozen=True)
class Refusal:
    """A refused request: which limit refused it and when to retry."""

    scope: Scope
    retry_after_s: float

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up, at least 1 (the ``Retry-After`` header value)."""
        return str(max(1, math.ceil(self.retry_after_s)))


class RateLimiter:
    """Checks requests against the per-token and per-session limits."""

    def __init__(self, *, store: Store, per_token: RateLimit, per_session: RateLimit) -> None:
        self._store = store
        self._limits = {Scope.TOKEN: per_token, Scope.SESSION: per_session}

    async def check(self, *, token: str | None, session: str | None) -> Refusal | None:
        """Charge one request to its token and session; the refusal, if any limit refuses."""
        subjects = {Scope.TOKEN: token, Scope.SESSION: session}
        charged: list[Scope] = []
        args: list[str | float | int] = []
        for scope, subject in subjects.items():
            limit = self._limits[scope]
            if subject is None or not limit.enabled:
                continue
            charged.append(scope)
            args += [_key(scope, subject), 1.0 / limit.rate, limit.burst]
        if not charged:
            return None
        index, retry_after = await self._store.run_source("GCRA", GCRA, *args)
        if int(index) == 0:
            return None
        return Refusal(scope=charged[int(index) - 1], retry_after_s=float(retry_after))


def _key(scope: Scope, subject: str) -> str:
    name = token_hash(subject) if scope is Scope.TOKEN else subject
    return f"{PREFIX}rl:{scope.value}:{name}"


def rate_limit_middleware(limiter: RateLimiter, metrics: ApiMetrics) -> Any:
    """Refuse over-limit requests with 429, ``Retry-After`` and a JSON error."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else ""
        token = bearer_token(request)
        scoped = token is not None and route.startswith(SESSION_ROUTE_PREFIX)
        session = request.match_info.get("id") if scoped else None
        refusal = await limiter.check(token=token, session=session)
        if refusal is None:
            return await handler(request)
        metrics.rate_limited.labels(scope=refusal.scope.value).inc()
        raise error(
            429,
            f"rate limit per {refusal.scope.value} exceeded; retry after the Retry-After seconds",
            headers={"Retry-After": refusal.retry_after_header},
        )

    return middleware
