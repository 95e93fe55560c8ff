"""The Lua scripts and the reconcile pass against a real Redis, in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from refplat.agent import Agent, AgentSettings
from refplat.controller import Controller, ControllerSettings, LostSessionPolicy
from refplat.lease import Lease, Term
from refplat.model import EndReason, GameServerState, SessionState
from refplat.runtime import HostPort
from refplat.store import PREFIX, FencedError, Store, connect

pytestmark = pytest.mark.integration


def with_store(redis_url: str, body: Callable[[Store], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        store = Store(connect(redis_url))
        try:
            return await body(store)
        finally:
            await store.redis.aclose()

    return asyncio.run(run())


def controller(store: Store, name: str = "a", heartbeat_timeout_s: float = 10) -> Controller:
    settings = ControllerSettings(
        controller_id=name,
        listen=HostPort("127.0.0.1", 0),
        heartbeat_timeout_s=heartbeat_timeout_s,
    )
    return Controller(store=store, settings=settings)


async def lead(store: Store, name: str = "a") -> Term:
    lease = Lease(store=store, holder=name, ttl_s=5)
    assert await lease.tick()
    assert lease.term is not None
    return lease.term


async def ready_servers(store: Store, ctl: Controller, term: Term, count: int) -> list[str]:
    """Create ``count`` servers for tenant t1 and walk them to Ready on node n1."""
    await store.run("HEARTBEAT", "n1", "127.0.0.1")
    ids = [f"gs-{i}" for i in range(count)]
    for sid in ids:
        await store.create_server(server_id=sid, tenant="t1", region="local", version="1.21")
    await ctl.reconcile_pass(term)
    for port, sid in enumerate(ids, start=30000):
        assert 1 == await store.run("MARK_READY", sid, "n1", port)
    return ids


def test_concurrent_allocations_never_share_a_server(redis_url: str) -> None:
    async def body(store: Store) -> list[tuple[str, str]]:
        ctl = controller(store)
        await ready_servers(store, ctl, await lead(store), 5)
        return await asyncio.gather(
            *(
                store.allocate(tenant="t1", region=None, session_id=f"s-{i}", ttl_s=60, idem_key="")
                for i in range(20)
            )
        )

    outcomes = with_store(redis_url, body)

    created = [sid for outcome, sid in outcomes if outcome == "created"]
    assert (5, 15) == (len(created), sum(outcome == "none" for outcome, _ in outcomes))

    async def servers_of(store: Store) -> set[str]:
        return {s.server_id for s in await store.list_sessions(tenant="t1")}

    assert 5 == len(with_store(redis_url, servers_of))


def test_the_same_idempotency_key_returns_the_same_session(redis_url: str) -> None:
    async def body(store: Store) -> list[tuple[str, str]]:
        await ready_servers(store, controller(store), await lead(store), 2)
        first = await store.allocate(
            tenant="t1", region="local", session_id="s-1", ttl_s=60, idem_key="k"
        )
        again = await store.allocate(
            tenant="t1", region="local", session_id="s-2", ttl_s=60, idem_key="k"
        )
        return [first, again]

    assert [("created", "s-1"), ("existing", "s-1")] == with_store(redis_url, body)


def test_a_retried_allocation_without_idempotency_key_does_not_take_a_second_server(
    redis_url: str,
) -> None:
    """redis-py re-sends a script after a lost reply; the session id makes that a no-op."""

    async def body(store: Store) -> tuple[list[tuple[str, str]], int]:
        await ready_servers(store, controller(store), await lead(store), 2)
        outcomes = [
            await store.allocate(tenant="t1", region=None, session_id="s-1", ttl_s=60, idem_key="")
            for _ in range(2)
        ]
        ready = await store.redis.scard(f"{PREFIX}ready:t1")
        return outcomes, int(ready)

    outcomes, ready = with_store(redis_url, body)
    assert [("created", "s-1"), ("existing", "s-1")] == outcomes
    assert 1 == ready


def test_a_deposed_leader_cannot_write_after_a_takeover(redis_url: str) -> None:
    async def body(store: Store) -> tuple[Term, Term]:
        old = await lead(store, "a")
        await store.redis.delete(f"{PREFIX}leader:lease")  # as if "a" froze past its TTL
        new = await lead(store, "b")
        await store.create_server(server_id="gs-1", tenant="t1", region="local", version="1.21")
        await store.run("HEARTBEAT", "n1", "127.0.0.1")
        with pytest.raises(FencedError):
            await store.run("CTL_SCHEDULE", old.holder, old.epoch, "gs-1", "n1")
        server = await store.get_server("gs-1")
        assert server is not None
        assert GameServerState.CREATING == server.state
        return old, new

    old, new = with_store(redis_url, body)

    assert (1, 2) == (old.epoch, new.epoch)


def test_an_expired_session_ends_and_frees_its_server(redis_url: str) -> None:
    async def body(store: Store) -> tuple[Any, Any]:
        ctl = controller(store)
        term = await lead(store)
        await ready_servers(store, ctl, term, 1)
        await store.allocate(tenant="t1", region=None, session_id="s-1", ttl_s=0.05, idem_key="")
        await asyncio.sleep(0.1)
        await ctl.reconcile_pass(term)
        return await store.get_session("s-1"), await store.get_server("gs-0")

    session, server = with_store(redis_url, body)

    assert (SessionState.ENDED, EndReason.EXPIRED) == (session.state, session.reason)
    assert (GameServerState.READY, None) == (server.state, server.session)


def test_a_lost_node_sends_its_servers_back_to_creating_and_its_sessions_end(
    redis_url: str,
) -> None:
    async def body(store: Store) -> tuple[Any, Any]:
        ctl = controller(store, heartbeat_timeout_s=0.05)
        term = await lead(store)
        await ready_servers(store, ctl, term, 1)
        await store.allocate(tenant="t1", region=None, session_id="s-1", ttl_s=60, idem_key="")
        await asyncio.sleep(0.1)
        await ctl.reconcile_pass(term)
        return await store.get_session("s-1"), await store.get_server("gs-0")

    session, server = with_store(redis_url, body)

    assert (SessionState.ENDED, EndReason.SERVER_LOST) == (session.state, session.reason)
    assert (GameServerState.CREATING, None, None) == (server.state, server.node, server.port)


@pytest.mark.parametrize("spare", [True, False], ids=["spare-server", "no-spare"])
def test_with_the_replace_policy_a_lost_servers_session_moves_to_a_spare_or_ends(
    redis_url: str, spare: bool
) -> None:
    async def body(store: Store) -> tuple[Any, ...]:
        settings = ControllerSettings(
            controller_id="a",
            listen=HostPort("127.0.0.1", 0),
            heartbeat_timeout_s=0.5,
            lost_session_policy=LostSessionPolicy.REPLACE,
        )
        ctl = Controller(store=store, settings=settings)
        term = await lead(store)
        await ready_servers(store, ctl, term, 1)  # gs-0 on n1
        await store.allocate(tenant="t1", region=None, session_id="s-1", ttl_s=60, idem_key="")
        if spare:  # gs-spare, Ready on n2
            await store.run("HEARTBEAT", "n2", "127.0.0.2")
            await store.create_server(
                server_id="gs-spare", tenant="t1", region="local", version="1.21"
            )
            await store.run("CTL_SCHEDULE", term.holder, term.epoch, "gs-spare", "n2")
            assert 1 == await store.run("MARK_READY", "gs-spare", "n2", 31000)
        await asyncio.sleep(0.6)
        await store.run("HEARTBEAT", "n2", "127.0.0.2")  # n2 stays live, n1 goes silent
        await ctl.reconcile_pass(term)
        return (
            await store.get_session("s-1"),
            await store.get_server("gs-0"),
            await store.get_server("gs-spare"),
        )

    session, lost, other = with_store(redis_url, body)

    assert GameServerState.CREATING == lost.state
    if spare:
        assert (SessionState.ACTIVE, "gs-spare", 31000, 1) == (
            session.state,
            session.server_id,
            session.port,
            session.replacements,
        )
        assert (GameServerState.ALLOCATED, "s-1") == (other.state, other.session)
    else:
        assert (SessionState.ENDED, EndReason.SERVER_LOST) == (session.state, session.reason)


def test_between_full_syncs_the_agent_reads_only_the_servers_marked_dirty(redis_url: str) -> None:
    async def body(store: Store) -> tuple[Any, ...]:
        ctl, term = controller(store), await lead(store)
        await store.run("HEARTBEAT", "n1", "127.0.0.1")
        settings = AgentSettings(node="n1", address="127.0.0.1", listen=HostPort("127.0.0.1", 0))
        agent = Agent(store=store, settings=settings)
        try:
            await store.create_server(server_id="gs-0", tenant="t1", region="eu", version="1.21")
            await ctl.reconcile_pass(term)  # Starting on n1, marked dirty for n1
            await agent.sync()  # the first sync lists everything
            first = await store.get_server("gs-0")
            # Hide the node's index: a full list would now find nothing and close gs-0.
            await store.redis.delete(f"{PREFIX}node:n1:servers")
            await store.create_server(server_id="gs-1", tenant="t1", region="eu", version="1.21")
            await store.run("CTL_SCHEDULE", term.holder, term.epoch, "gs-1", "n1")
            dirty = await store.redis.smembers(f"{PREFIX}node:n1:dirty")
            await agent.sync()
            second = await store.get_server("gs-1")
            left = await store.redis.smembers(f"{PREFIX}node:n1:dirty")
            return first, dirty, second, left, sorted(agent._listeners)
        finally:
            agent.close()

    first, dirty, second, left, listening = with_store(redis_url, body)

    assert GameServerState.READY == first.state
    assert {"gs-0", "gs-1"} == dirty  # gs-0: the agent's own MARK_READY marks it too
    # What is left is the agent's own MARK_READY of gs-1, read back at the next sync.
    assert (GameServerState.READY, {"gs-1"}) == (second.state, left)
    assert ["gs-0", "gs-1"] == listening


def test_between_full_lists_the_controller_reads_only_the_servers_marked_dirty(
    redis_url: str,
) -> None:
    async def body(store: Store) -> tuple[Any, ...]:
        ctl, term = controller(store), await lead(store)
        await store.run("HEARTBEAT", "n1", "127.0.0.1")
        await store.create_server(server_id="gs-0", tenant="t1", region="eu", version="1.21")
        await ctl.reconcile_pass(term)  # the first pass of a term lists everything
        # Hide the index: a full list would now find no server to schedule.
        await store.redis.delete(f"{PREFIX}servers")
        await store.create_server(server_id="gs-1", tenant="t1", region="eu", version="1.21")
        await store.redis.srem(f"{PREFIX}servers", "gs-1")
        await ctl.reconcile_pass(term)
        return await store.get_server("gs-0"), await store.get_server("gs-1")

    first, second = with_store(redis_url, body)

    assert (GameServerState.STARTING, "n1") == (first.state, first.node)
    assert (GameServerState.STARTING, "n1") == (second.state, second.node)


def test_ending_a_session_twice_is_idempotent_and_keeps_the_record(redis_url: str) -> None:
    async def body(store: Store) -> list[Any]:
        await ready_servers(store, controller(store), await lead(store), 1)
        await store.allocate(tenant="t1", region=None, session_id="s-1", ttl_s=60, idem_key="")
        results = []
        for _ in range(2):
            await store.end_session(session_id="s-1", tenant="t1", reason=EndReason.COMPLETED)
            results.append(await store.get_session("s-1"))
        return results

    first, second = with_store(redis_url, body)

    assert first == second
    assert (SessionState.ENDED, EndReason.COMPLETED) == (first.state, first.reason)


def test_allocate_and_end_read_the_session_in_one_trip_even_after_redis_forgets_its_scripts(
    redis_url: str,
) -> None:
    async def body(store: Store) -> list[Any]:
        ctl = controller(store)
        await ready_servers(store, ctl, await lead(store), 2)
        await store.redis.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
        args = {"tenant": "t1", "region": None, "ttl_s": 60.0}
        created = await store.allocate_and_read(session_id="s-1", idem_key="k", **args)
        again = await store.allocate_and_read(session_id="s-2", idem_key="k", **args)
        none_left = await store.allocate_and_read(session_id="s-3", idem_key="", **args)
        exhausted = await store.allocate_and_read(session_id="s-5", idem_key="", **args)
        ended = await store.end_and_read(session_id="s-1", tenant="t1", reason=EndReason.COMPLETED)
        foreign = await store.end_and_read(
            session_id="s-3", tenant="t2", reason=EndReason.COMPLETED
        )
        return [created, again, none_left, exhausted, ended, foreign]

    created, again, third, exhausted, ended, foreign = with_store(redis_url, body)  # 2 servers
    assert ("created", "s-1", SessionState.ACTIVE) == (created[0], created[1].id, created[1].state)
    assert ("existing", "s-1") == (again[0], again[1].id)  # the key names the first session
    assert ("created", "s-3") == (third[0], third[1].id)
    assert ("none", None) == exhausted
    assert ended is not None and (SessionState.ENDED, "Completed") == (ended.state, ended.reason)
    assert foreign is None  # another tenant's session: not found, not ended


def test_a_found_token_is_trusted_briefly_and_an_unknown_one_is_never_cached(
    redis_url: str,
) -> None:
    async def body(store: Store) -> list[str | None]:
        before = await store.tenant_for_token("tok")  # unknown: not remembered as unknown
        await store.create_tenant(tenant_id="t-9", name="nine", token="tok")
        found = await store.tenant_for_token("tok")
        await store.redis.delete(*await store.redis.keys(f"{PREFIX}token:*"))
        cached = await store.tenant_for_token("tok")  # within TOKEN_CACHE_TTL_S
        fresh = await Store(store.redis).tenant_for_token("tok")  # another replica
        return [before, found, cached, fresh]

    assert [None, "t-9", "t-9", None] == with_store(redis_url, body)


def test_a_list_by_state_reads_only_that_states_index(redis_url: str) -> None:
    async def body(store: Store) -> list[Any]:
        ctl = controller(store)
        ids = await ready_servers(store, ctl, await lead(store), 3)
        _, session = await store.allocate_and_read(
            tenant="t1", region=None, session_id="s-1", ttl_s=60, idem_key=""
        )
        assert session is not None
        allocated = [
            (await store.page_servers(tenant=t, state="Allocated")).items for t in ("t1", None)
        ]
        ready_before = (await store.page_servers(tenant="t1", state="Ready")).items
        spare = next(i for i in ids if i != session.server_id)
        await store.redis.srem(f"{PREFIX}tenant:t1:state:Ready", spare)  # off the index
        ready_after = (await store.page_servers(tenant="t1", state="Ready")).items
        ids_of = [[s.id for s in page] for page in (*allocated, ready_before, ready_after)]
        return [session.server_id, spare, *ids_of]

    server, spare, mine, everyones, ready_before, ready_after = with_store(redis_url, body)
    assert [server] == mine == everyones
    assert 2 == len(ready_before) and server not in ready_before
    # The index decides what is read: a Ready server missing from it is not listed.
    assert [s for s in ready_before if s != spare] == ready_after
