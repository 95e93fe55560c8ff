"""The state machines against the real Lua scripts on a real Redis.

Three checks: every (from, to, owner) state write through ``bump`` is accepted exactly when
refplat.states allows it; every script run on a server in every state makes only allowed
transitions (and together the scripts make every allowed one); and a hypothesis state
machine drives random sequences of scripts and checks the invariants after every step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from harness.util.scratch import scratch_redis
from refplat import scripts
from refplat.model import GameServerState
from refplat.states import (
    POWER,
    RESTART_IN_PLACE,
    SERVER_TRANSITIONS,
    Owner,
    PowerSignal,
    allowed,
)

pytestmark = pytest.mark.integration

P = "refplat:"
GS = GameServerState
CID = "ctl"
SID = "gs-1"
PORT = "30000"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    """One real redis-server for the module (tests and hypothesis examples flush it)."""
    with (
        scratch_redis(tmp_path_factory.mktemp("redis")) as url,
        redis.Redis.from_url(url, decode_responses=True, socket_timeout=5) as conn,
    ):
        yield conn


class Lua:
    """The scripts of refplat.scripts, by name, on one client."""

    def __init__(self, conn: redis.Redis) -> None:
        self.conn = conn
        self._loaded: dict[str, Any] = {}
        self.epoch = 0

    def __call__(self, name: str, *args: str | int | float) -> Any:
        script = self._loaded.get(name)
        if script is None:
            script = self._loaded[name] = self.conn.register_script(scripts.source(name))
        if name.startswith("CTL_"):
            args = (CID, self.epoch, *args)
        return script(keys=[], args=list(args))

    def reset(self) -> None:
        self.conn.flushdb()
        self.epoch = int(self("LEASE_ACQUIRE", CID, 600000))

    def state(self, sid: str = SID) -> str | None:
        value = self.conn.hget(f"{P}server:{sid}", "state")
        return str(value) if value is not None else None


@pytest.fixture
def lua(client: redis.Redis) -> Lua:
    runner = Lua(client)
    runner.reset()
    return runner


def put_server(lua: Lua, state: GameServerState, *, on_node: bool = True) -> None:
    """Write a server in ``state`` straight into Redis, with what that state implies."""
    conn, key = lua.conn, f"{P}server:{SID}"
    lua("HEARTBEAT", "n1", "127.0.0.1")
    node = "n1" if on_node else ""
    running = state in (GS.READY, GS.ALLOCATED)
    conn.hset(
        key,
        mapping={
            "id": SID,
            "tenant": "t1",
            "region": "eu",
            "version": "1.21",
            "state": state.value,
            "node": node,
            "address": "127.0.0.1" if node else "",
            "port": PORT if running else "",
            "session": "s-1" if state is GS.ALLOCATED else "",
            "restart": "",
            "rv": 1,
        },
    )
    conn.sadd(f"{P}servers", SID)
    conn.sadd(f"{P}tenant:t1:servers", SID)
    if node:
        conn.sadd(f"{P}node:n1:servers", SID)
    if state is GS.READY:
        conn.sadd(f"{P}ready:t1", SID)
        conn.sadd(f"{P}ready:t1:eu", SID)
    if state is GS.ALLOCATED:
        session = {"id": "s-1", "tenant": "t1", "server_id": SID, "address": "127.0.0.1"}
        session |= {"port": PORT, "state": "Active", "reason": "", "created_at": "1"}
        conn.hset(f"{P}session:s-1", mapping={**session, "expires_at": "2"})  # long expired
        conn.sadd(f"{P}sessions", "s-1")
        conn.sadd(f"{P}tenant:t1:sessions", "s-1")
        conn.zadd(f"{P}sessions:active", {"s-1": 2})


# Node n2 (with another server holding session s-9) is lost; its session may move to gs-1.
REPLACE_ELSEWHERE: tuple[str, tuple[str | int, ...]] = ("CTL_NODE_LOST", ("n2", -1, "replace"))


def put_lost_session_on_n2(lua: Lua) -> None:
    """gs-9 on node n2, Allocated to the Active session s-9 of tenant t1 in region eu."""
    conn, key = lua.conn, f"{P}server:gs-9"
    lua("HEARTBEAT", "n2", "127.0.0.2")
    server = {"id": "gs-9", "tenant": "t1", "region": "eu", "version": "1.21", "node": "n2"}
    server |= {"state": "Allocated", "address": "127.0.0.2", "port": PORT, "session": "s-9"}
    conn.hset(key, mapping={**server, "restart": "", "rv": 1})
    conn.sadd(f"{P}servers", "gs-9")
    conn.sadd(f"{P}node:n2:servers", "gs-9")
    session = {"id": "s-9", "tenant": "t1", "server_id": "gs-9", "address": "127.0.0.2"}
    session |= {"port": PORT, "state": "Active", "reason": "", "created_at": "1"}
    conn.hset(f"{P}session:s-9", mapping={**session, "expires_at": "9999999999"})
    conn.zadd(f"{P}sessions:active", {"s-9": 9999999999})


# Every script that could move gs-1, with arguments that let it (when its state does).
MOVES: list[tuple[str, tuple[str | int, ...]]] = [
    ("CTL_SCHEDULE", (SID, "n1")),
    ("MARK_READY", (SID, "n1", 30001)),
    ("MARK_ERROR", (SID, "n1")),
    ("MARK_UNHEALTHY", (SID, "n1")),
    ("POD_LOST", (SID, "n1", "pod deleted")),
    ("MOVE_PORT", (SID, "n1", 30002, "")),
    ("ALLOCATE", ("t1", "", "s-2", 60, "")),
    ("END_SESSION", ("s-1", "t1", "Completed")),
    ("CTL_EXPIRE_SESSION", ("s-1",)),
    *[("POWER", (SID, "t1", signal.value)) for signal in PowerSignal],
    ("SHUTDOWN_SERVER", (SID, "t1")),
    ("CTL_NODE_LOST", ("n1", -1)),
    ("CTL_NODE_LOST", ("n1", -1, "replace")),
    REPLACE_ELSEWHERE,
    ("CTL_SERVER_LOST", (SID, "end")),
    ("CTL_REMOVE_ORPHAN", (SID,)),
    ("REMOVE_SHUTDOWN", (SID, "n1")),
]
SHAPES = [(s, s is not GS.CREATING) for s in GS] + [(GS.STOPPED, False)]


def owner(name: str) -> Owner:
    found = scripts.owner_of(name)
    assert found is not None, name
    return found


@pytest.mark.parametrize("source", [s.value for s in GS])
@pytest.mark.parametrize("target", [s.value for s in GS])
def test_a_state_write_is_accepted_exactly_when_the_table_allows_it_for_the_owner(
    lua: Lua, source: str, target: str
) -> None:
    outcomes = {}
    for who in Owner:
        put_server(lua, GS(source))
        before = lua.conn.hgetall(f"{P}server:{SID}")
        body = f"bump(skey('{SID}'), 'state', '{target}') return 1"
        try:
            lua.conn.eval(scripts.script(body, owner=who), 0)
            outcomes[who] = lua.state()
        except redis.ResponseError as exc:
            assert "FORBIDDEN" in str(exc)
            assert before == lua.conn.hgetall(f"{P}server:{SID}")
            outcomes[who] = "refused"
    expected = {
        who: target if source == target or allowed(source, target, who) else "refused"
        for who in Owner
    }

    assert expected == outcomes


def test_a_script_without_an_owner_may_not_change_any_state(lua: Lua) -> None:
    put_server(lua, GS.READY)

    with pytest.raises(redis.ResponseError, match="FORBIDDEN"):
        lua.conn.eval(scripts.script(f"bump(skey('{SID}'), 'state', 'Shutdown')"), 0)
    assert "Ready" == lua.state()


def test_every_script_in_every_state_makes_only_allowed_transitions_and_all_of_them(
    lua: Lua,
) -> None:
    observed: set[tuple[str, str, Owner]] = set()
    bad = []
    for state, on_node in SHAPES:
        for name, args in MOVES:
            lua.reset()
            put_server(lua, state, on_node=on_node)
            if (name, args) == REPLACE_ELSEWHERE:
                put_lost_session_on_n2(lua)
            lua(name, *args)
            after = lua.state()
            if after is None:  # deleted: only ever a Shutdown server
                if state is not GS.SHUTDOWN:
                    bad.append(f"{name} deleted a {state} server")
            elif after != state.value:
                observed.add((state.value, after, owner(name)))
                if not allowed(state.value, after, owner(name)):
                    bad.append(f"{name} moved {state} -> {after}")

    assert [] == bad
    assert {(t.source, t.target, t.owner) for t in SERVER_TRANSITIONS} == observed


def expected_power(signal: PowerSignal, state: GameServerState, *, on_node: bool) -> list[str]:
    if state not in POWER[signal]:
        return ["conflict", state.value]
    if signal is PowerSignal.RESTART and state in RESTART_IN_PLACE:
        return ["ok", state.value]
    if signal is PowerSignal.STOP:
        return ["ok", "Stopped"]
    return ["ok", "Starting" if on_node else "Creating"]


@pytest.mark.parametrize("signal", list(PowerSignal), ids=str)
def test_each_power_signal_in_each_state_does_what_the_table_says_and_conflicts_write_nothing(
    lua: Lua, signal: PowerSignal
) -> None:
    expected, actual = {}, {}
    for state, on_node in SHAPES:
        case = f"{state}{'' if on_node else ' (no node)'}"
        lua.reset()
        put_server(lua, state, on_node=on_node)
        before = lua.conn.hgetall(f"{P}server:{SID}")
        result = lua("POWER", SID, "t1", signal.value)
        expected[case] = expected_power(signal, state, on_node=on_node)
        actual[case] = [result[0], lua.state()]
        if result[0] == "conflict":
            assert before == lua.conn.hgetall(f"{P}server:{SID}")

    assert expected == actual


def test_restarting_an_allocated_server_keeps_its_session_and_moves_the_session_port(
    lua: Lua,
) -> None:
    put_server(lua, GS.ALLOCATED)

    assert ["ok", "Allocated"] == lua("POWER", SID, "t1", "restart")
    token = lua.conn.hget(f"{P}server:{SID}", "restart")
    assert 1 == lua("MOVE_PORT", SID, "n1", 30009, token)

    server = lua.conn.hgetall(f"{P}server:{SID}")
    session = lua.conn.hgetall(f"{P}session:s-1")
    assert ("Allocated", "s-1", "30009", "") == (
        server["state"],
        server["session"],
        server["port"],
        server["restart"],
    )
    assert ("Active", "30009") == (session["state"], session["port"])


def test_stopping_an_allocated_server_ends_its_session_evicted(lua: Lua) -> None:
    put_server(lua, GS.ALLOCATED)

    assert ["ok", "Stopped"] == lua("POWER", SID, "t1", "stop")

    session = lua.conn.hgetall(f"{P}session:s-1")
    assert ("Ended", "Evicted") == (session["state"], session["reason"])
    assert ("", "n1") == tuple(lua.conn.hmget(f"{P}server:{SID}", ["session", "node"]))
    assert set() == lua.conn.smembers(f"{P}ready:t1")


# The hypothesis state machine.

SERVERS = [f"gs-{i}" for i in range(3)]
NODES = ["n1", "n2"]
DRAW_BOUND = 64  # more than any list a rule picks from (servers, sessions of one example)
REGIONS = {sid: ("eu" if i % 2 else "us") for i, sid in enumerate(SERVERS)}
RUNNING = ("Ready", "Allocated")
NODE_BOUND = ("Starting", "Ready", "Allocated", "Unhealthy", "Error")


class Snapshot:
    """Every server and session hash, and the ready sets, read in one round trip."""

    def __init__(self, conn: redis.Redis, sessions: list[str]) -> None:
        pipe = conn.pipeline(transaction=True)
        for sid in SERVERS:
            pipe.hgetall(f"{P}server:{sid}")
        for sess in sessions:
            pipe.hgetall(f"{P}session:{sess}")
        for suffix in ("", ":eu", ":us"):
            pipe.smembers(f"{P}ready:t1{suffix}")
        for node in NODES:
            pipe.smembers(f"{P}node:{node}:servers")
        for node in NODES:
            pipe.hget(f"{P}node:{node}", "state")
        out = pipe.execute()
        out, node_states = out[: -len(NODES)], out[-len(NODES) :]
        self.node_states = dict(zip(NODES, node_states, strict=True))
        raws, out = out[: len(SERVERS)], out[len(SERVERS) :]
        self.servers = {sid: raw for sid, raw in zip(SERVERS, raws, strict=True) if raw}
        self.sessions = dict(zip(sessions, out[: len(sessions)], strict=True))
        ready = out[len(sessions) : len(sessions) + 3]
        self.ready = dict(zip(("", "eu", "us"), ready, strict=True))
        self.node_sets = dict(zip(NODES, out[len(sessions) + 3 :], strict=True))

    def in_state(self, *states: str) -> list[str]:
        return [sid for sid, raw in self.servers.items() if raw["state"] in states]

    def on_node(self) -> list[str]:
        return [sid for sid, raw in self.servers.items() if raw["node"]]

    def active(self) -> dict[str, dict[str, str]]:
        return {s: raw for s, raw in self.sessions.items() if raw.get("state") == "Active"}


def nth(data: st.DataObject, items: Sequence[str]) -> str:
    """One of ``items``, drawn with bounds that do not depend on ``items`` (see ``pick``)."""
    return items[data.draw(st.integers(0, DRAW_BOUND - 1)) % len(items)]


class Platform(RuleBasedStateMachine):
    """Random sequences of the real scripts; the table and the invariants must hold."""

    def __init__(self, lua: Lua) -> None:
        super().__init__()
        self.lua = lua
        lua.reset()
        for node in NODES:
            lua("HEARTBEAT", node, "127.0.0.1")
        self.sessions: list[str] = []
        self.ports = iter(range(40000, 60000))
        self.snap = Snapshot(lua.conn, self.sessions)

    def run(self, name: str, *args: str | int | float) -> Any:
        result = self.lua(name, *args)
        before, self.snap = self.snap, Snapshot(self.lua.conn, self.sessions)
        who = owner(name) if name != "CREATE_SERVER" else Owner.API
        for sid in SERVERS:
            old = before.servers.get(sid, {}).get("state")
            new = self.snap.servers.get(sid, {}).get("state")
            if old == new:
                continue
            if old is None:
                assert "Creating" == new
            elif new is None:
                assert "Shutdown" == old, f"{name} deleted {sid} in {old}"
            else:
                assert allowed(old, new, who), f"{name}: {sid} {old} -> {new} by {who}"
        return result

    def pick(self, data: st.DataObject, *states: str) -> str:
        """A server in one of ``states`` when there is one (else any id: a no-op to refuse).

        Every draw has the same bounds whatever Redis holds: ALLOCATE picks its server at
        random (SRANDMEMBER), so anything drawn from the state would differ between a replay
        and the original run, which hypothesis rejects as a flaky strategy. For the same
        reason no rule has a precondition that reads the state.
        """
        return nth(data, self.snap.in_state(*states) or SERVERS)

    def node_of(self, sid: str) -> str:
        return self.snap.servers.get(sid, {}).get("node") or "n1"

    @initialize()
    def three_ready_servers(self) -> None:
        for i, sid in enumerate(SERVERS):
            self.run("CREATE_SERVER", sid, "t1", REGIONS[sid], "1.21", 1024, 10240)
            self.run("CTL_SCHEDULE", sid, NODES[i % 2])
            self.run("MARK_READY", sid, NODES[i % 2], next(self.ports))

    @rule(data=st.data())
    def create(self, data: st.DataObject) -> None:
        sid = nth(data, SERVERS)  # an existing id: the create is refused and changes nothing
        self.run("CREATE_SERVER", sid, "t1", REGIONS[sid], "1.21", 1024, 10240)

    @rule(data=st.data(), node=st.sampled_from(NODES))
    def schedule(self, data: st.DataObject, node: str) -> None:
        self.run("CTL_SCHEDULE", self.pick(data, "Creating"), node)

    @rule(data=st.data(), error=st.booleans())
    def agent_starts(self, data: st.DataObject, error: bool) -> None:
        sid = self.pick(data, "Starting")
        if error:
            self.run("MARK_ERROR", sid, self.node_of(sid))
        else:
            self.run("MARK_READY", sid, self.node_of(sid), next(self.ports))

    @rule(data=st.data())
    def agent_marks_unhealthy(self, data: st.DataObject) -> None:
        sid = self.pick(data, *RUNNING)
        self.run("MARK_UNHEALTHY", sid, self.node_of(sid))

    @rule(data=st.data())
    def agent_loses_pod(self, data: st.DataObject) -> None:
        sid = self.pick(data, *RUNNING)
        self.run("POD_LOST", sid, self.node_of(sid), "pod deleted")

    @rule(data=st.data(), policy=st.sampled_from(["end", "replace"]))
    def controller_handles_lost_server(self, data: st.DataObject, policy: str) -> None:
        self.run("CTL_SERVER_LOST", self.pick(data, "Unhealthy"), policy)

    @rule(data=st.data())
    def agent_moves_port(self, data: st.DataObject) -> None:
        sid = self.pick(data, *RUNNING)
        token = self.snap.servers.get(sid, {}).get("restart", "")
        self.run("MOVE_PORT", sid, self.node_of(sid), next(self.ports), token)

    @rule(region=st.sampled_from(["", "eu", "us"]), ttl=st.sampled_from([60, -1]))
    def allocate(self, region: str, ttl: int) -> None:
        sess = f"s-{len(self.sessions)}"
        self.sessions.append(sess)
        self.run("ALLOCATE", "t1", region, sess, ttl, "")

    @rule(data=st.data(), expire=st.booleans())
    def session_ends(self, data: st.DataObject, expire: bool) -> None:
        sess = nth(data, sorted(self.snap.active()) or self.sessions or ["s-none"])
        if expire:
            self.run("CTL_EXPIRE_SESSION", sess)
        else:
            self.run("END_SESSION", sess, "t1", "Completed")

    @rule(data=st.data(), signal=st.sampled_from(list(PowerSignal)))
    def power(self, data: st.DataObject, signal: PowerSignal) -> None:
        self.run("POWER", nth(data, sorted(self.snap.servers) or SERVERS), "t1", signal.value)

    @rule(data=st.data())
    def shutdown(self, data: st.DataObject) -> None:
        self.run("SHUTDOWN_SERVER", nth(data, sorted(self.snap.servers) or SERVERS), "t1")

    @rule(data=st.data(), by_agent=st.booleans())
    def remove_shutdown(self, data: st.DataObject, by_agent: bool) -> None:
        sid = self.pick(data, "Shutdown")
        if by_agent:
            self.run("REMOVE_SHUTDOWN", sid, self.node_of(sid))
        else:
            self.run("CTL_REMOVE_ORPHAN", sid)

    @rule(node=st.sampled_from(NODES), policy=st.sampled_from(["end", "replace"]))
    def node_lost(self, node: str, policy: str) -> None:
        self.run("CTL_NODE_LOST", node, -1, policy)

    @rule(node=st.sampled_from(NODES))
    def heartbeat(self, node: str) -> None:
        self.run("HEARTBEAT", node, "127.0.0.1")

    @invariant()
    def no_server_is_held_by_two_active_sessions(self) -> None:
        held = [raw["server_id"] for raw in self.snap.active().values()]
        assert len(held) == len(set(held))

    @invariant()
    def active_sessions_and_allocated_servers_point_at_each_other(self) -> None:
        """... or a server whose Pod was lost, until the controller re-places the session."""
        active = self.snap.active()
        for sess, raw in active.items():
            server = self.snap.servers.get(raw["server_id"], {})
            state = server.get("state")
            assert sess == server.get("session"), sess
            assert state == "Allocated" or (state == "Unhealthy" and server.get("lost")), sess
        for sid in self.snap.in_state("Allocated"):
            assert self.snap.servers[sid]["session"] in active, sid

    @invariant()
    def the_ready_sets_hold_exactly_the_ready_servers(self) -> None:
        ready = set(self.snap.in_state("Ready"))
        assert ready == self.snap.ready[""]
        for region in ("eu", "us"):
            assert {s for s in ready if REGIONS[s] == region} == self.snap.ready[region]

    @invariant()
    def the_state_indexes_hold_exactly_the_servers_in_each_state(self) -> None:
        pipe = self.lua.conn.pipeline(transaction=True)
        for state in GS:
            pipe.smembers(f"{P}state:{state.value}")
            pipe.smembers(f"{P}tenant:t1:state:{state.value}")
        indexed = iter(pipe.execute())
        for state in GS:
            every, tenant = next(indexed), next(indexed)
            assert set(self.snap.in_state(state.value)) == every == tenant, state

    @invariant()
    def an_unhealthy_server_holds_a_session_only_when_its_pod_was_lost(self) -> None:
        for sid in self.snap.in_state("Unhealthy"):
            raw = self.snap.servers[sid]
            assert not raw["session"] or raw.get("lost"), sid

    @invariant()
    def servers_on_a_node_are_in_its_set_and_running_ones_have_a_node(self) -> None:
        for sid, raw in self.snap.servers.items():
            if raw["node"]:
                assert sid in self.snap.node_sets[raw["node"]]
            assert raw["node"] or raw["state"] not in NODE_BOUND, sid


def test_random_script_sequences_keep_the_table_and_the_invariants(lua: Lua) -> None:
    machine: Callable[[], Platform] = lambda: Platform(lua)  # noqa: E731
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=60,
            stateful_step_count=40,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


def test_a_node_is_lost_only_after_the_timeout_counted_from_the_leaders_first_pass(
    lua: Lua,
) -> None:
    # n1's heartbeat is 60 s old; a leader that took over 2 s ago (across a Redis failover, when
    # no heartbeat could be written) counts the node's silence from its own first pass.
    put_server(lua, GS.READY)
    now = float(lua.conn.time()[0])
    lua.conn.hset(f"{P}node:n1", "heartbeat_at", now - 60)

    assert [0, [], []] == lua("CTL_NODE_LOST", "n1", 8, "end", now - 2)
    assert "Live" == lua.conn.hget(f"{P}node:n1", "state")
    # Once the timeout has passed since that first pass too, the node is lost.
    changed, _, _ = lua("CTL_NODE_LOST", "n1", 8, "end", now - 9)
    assert changed != 0
    assert "Lost" == lua.conn.hget(f"{P}node:n1", "state")


@pytest.mark.parametrize("policy", ["end", "replace"])
def test_a_server_whose_pod_was_lost_keeps_its_session_until_the_controller_handles_it(
    lua: Lua, policy: str
) -> None:
    put_server(lua, GS.ALLOCATED)  # gs-1 on n1, holding the Active session s-1 (region eu)
    lua("HEARTBEAT", "n2", "127.0.0.2")
    lua("CREATE_SERVER", "gs-2", "t1", "eu", "1.21", 1024, 10240)
    lua("CTL_SCHEDULE", "gs-2", "n2")
    lua("MARK_READY", "gs-2", "n2", 30002)

    assert 0 == lua("POD_LOST", SID, "n2", "pod deleted")  # only gs-1's own node reports it
    assert 1 == lua("POD_LOST", SID, "n1", "pod deleted")
    server = lua.conn.hgetall(f"{P}server:{SID}")
    assert ("Unhealthy", "s-1", "pod deleted") == (
        server["state"],
        server["session"],
        server["lost"],
    )
    assert "Active" == lua.conn.hget(f"{P}session:s-1", "state")

    changed, replaced, ended = lua("CTL_SERVER_LOST", SID, policy)

    server = lua.conn.hgetall(f"{P}server:{SID}")
    assert (1, "Creating", "", "", "") == (
        changed,
        server["state"],
        server["node"],
        server["session"],
        server["lost"],
    )
    assert not lua.conn.sismember(f"{P}node:n1:servers", SID)
    session = lua.conn.hgetall(f"{P}session:s-1")
    if policy == "replace":
        assert (["s-1"], []) == (replaced, ended)
        assert ("Active", "gs-2", "Allocated") == (
            session["state"],
            session["server_id"],
            lua.state("gs-2"),
        )
    else:
        assert ([], ["s-1"]) == (replaced, ended)
        assert ("Ended", "ServerLost", "Ready") == (
            session["state"],
            session["reason"],
            lua.state("gs-2"),
        )
    assert [0, [], []] == lua("CTL_SERVER_LOST", SID, policy)  # converged: a no-op


def test_an_unhealthy_server_whose_listener_stopped_is_not_replaced_by_the_controller(
    lua: Lua,
) -> None:
    put_server(lua, GS.READY)
    assert 1 == lua("MARK_UNHEALTHY", SID, "n1")

    assert [0, [], []] == lua("CTL_SERVER_LOST", SID, "replace")
    assert "Unhealthy" == lua.state()
