"""The leader's census of the cluster, read once per reconcile pass and exported as gauges.

Servers and nodes come from the lists the pass reads anyway; sessions by state cost one
``SCARD`` and one ``ZCARD`` (see :func:`session_state_counts`), and the TTL-prune lag one
``ZRANGEBYSCORE`` for the oldest due session. See :class:`refplat.metrics.CensusMetrics`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from refplat.metrics import Census
from refplat.model import GameServer, Node, SessionState
from refplat.store import PREFIX, Store


async def take_census(
    store: Store, *, nodes: Sequence[Node], servers: Sequence[GameServer], now: float
) -> Census:
    """Count what the pass listed, plus the sessions by state and the TTL-prune lag."""
    return Census(
        servers=dict(Counter(s.state for s in servers)),
        sessions=await session_state_counts(store),
        nodes=dict(Counter(n.state for n in nodes)),
        heartbeat_age_s={n.name: max(0.0, now - n.heartbeat_at) for n in nodes},
        ttl_prune_lag_s=await ttl_prune_lag(store, now=now),
    )


async def session_state_counts(store: Store) -> dict[SessionState, int]:
    """How many stored sessions are in each state, in O(1).

    Allocation and ending are single scripts, so a session is Active exactly while it is in
    ``sessions:active`` and Ended otherwise (Pending and Ending are unused, so 0). Reading
    every session's state instead would cost one HGET per session ever stored (ended records
    stay): about 1 s per 10,000 sessions on this busy 2-core machine (``benchmarks/census.py``),
    far too much for every pass.
    """
    async with store.redis.pipeline(transaction=False) as pipe:
        pipe.scard(f"{PREFIX}sessions")
        pipe.zcard(f"{PREFIX}sessions:active")
        stored, active = await pipe.execute()
    return {SessionState.ACTIVE: int(active), SessionState.ENDED: max(0, int(stored) - int(active))}


async def ttl_prune_lag(store: Store, *, now: float) -> float:
    """Seconds the oldest Active session has been past its expiry (0 when none is due)."""
    oldest = await store.redis.zrangebyscore(
        f"{PREFIX}sessions:active", 0, now, start=0, num=1, withscores=True
    )
    if not oldest:
        return 0.0
    expires_at = float(oldest[0][1])
    return max(0.0, now - expires_at)
