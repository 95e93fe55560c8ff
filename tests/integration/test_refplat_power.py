"""Power actions, list filters and pagination, with real processes (and one in-process agent)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from typing import Any

import pytest
from mcstatus import JavaServer

from harness.util.scratch import scratch_redis
from refplat.agent import Agent, AgentSettings
from refplat.lease import Lease
from refplat.model import GameServerState
from refplat.runtime import HostPort
from refplat.states import PowerSignal
from refplat.store import Store, connect
from tests.integration.test_refplat_platform import (
    Launcher,
    Platform,
    call,
    is_ok,
    new_tenant,
    ready_servers,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Real processes for the module: Redis, two agents, one controller, one api.

    Each test works as its own tenant, so the tests do not see each other's servers.
    """
    tmp = tmp_path_factory.mktemp("power")
    with scratch_redis(tmp) as url:
        launcher = Launcher(redis_url=url, tmp_path=tmp)
        try:
            urls = [launcher.start(n, "agent", "--node", n)[1] for n in ("node-1", "node-2")]
            urls.append(launcher.start("ctl", "controller", "--id", "a")[1])
            api_args = ["--instance", "api-0", "--admin-token-file", str(launcher.token_file)]
            urls.append(launcher.start("api", "api", *api_args)[1])
            for base in urls:  # generous: a loaded 2-core machine starts Python slowly
                healthz = f"{base}/healthz"
                wait_for(healthz, functools.partial(is_ok, healthz), timeout_s=60)
            yield Platform(api=urls[-1])
        finally:
            launcher.close()


def answers(address: str, port: int) -> bool:
    """Whether a real Minecraft client gets a status from ``address:port``."""
    try:
        JavaServer(address, port, timeout=1).status(tries=1)
    except OSError:
        return False
    return True


def power(plat: Platform, token: str, server_id: str, signal: str) -> tuple[int, Any]:
    url = f"{plat.api}/v1/servers/{server_id}/power"
    return call("POST", url, token=token, body={"signal": signal})


def server(plat: Platform, token: str, server_id: str) -> dict[str, Any]:
    status, body = call("GET", f"{plat.api}/v1/servers/{server_id}", token=token)
    assert 200 == status, body
    return dict(body)


def ready_server(plat: Platform, token: str) -> dict[str, Any]:
    status, created = call("POST", f"{plat.api}/v1/servers", token=token, body={})
    assert 201 == status, created

    def probe() -> dict[str, Any] | None:
        body = server(plat, token, created["id"])
        return body if body["state"] == "Ready" else None

    return wait_for("a Ready server", probe, timeout_s=15)


def test_stop_closes_the_listener_and_start_brings_it_back_ready_on_a_port_that_answers(
    platform: Platform,
) -> None:
    token = new_tenant(platform, "acme")
    before = ready_server(platform, token)
    assert answers(before["address"], before["port"])

    status, stopped = power(platform, token, before["id"], "stop")
    assert (202, "Stopped", None) == (status, stopped["state"], stopped["port"])
    wait_for(
        "the listener to close", lambda: not answers(before["address"], before["port"]), timeout_s=5
    )

    status, starting = power(platform, token, before["id"], "start")
    assert (202, "Starting") == (status, starting["state"])
    after = wait_for(
        "Ready again",
        lambda: (s := server(platform, token, before["id"]))["state"] == "Ready" and s,
        timeout_s=10,
    )
    assert (before["node"], True) == (after["node"], answers(after["address"], after["port"]))


def test_restarting_an_allocated_server_keeps_its_session_and_the_new_port_answers(
    platform: Platform,
) -> None:
    token = new_tenant(platform, "acme")
    ready_server(platform, token)
    status, session = call("POST", f"{platform.api}/v1/sessions", token=token, body={})
    assert 201 == status, session
    old_port = session["port"]

    status, restarting = power(platform, token, session["server_id"], "restart")
    assert (202, "Allocated", session["id"]) == (
        status,
        restarting["state"],
        restarting["session"],
    )

    def restarted() -> dict[str, Any] | None:
        body = server(platform, token, session["server_id"])
        return body if not body["restarting"] and body["port"] != old_port else None

    after = wait_for("the restart", restarted, timeout_s=10)
    _, session_after = call("GET", f"{platform.api}/v1/sessions/{session['id']}", token=token)
    assert ("Allocated", session["id"]) == (after["state"], after["session"])
    assert ("Active", after["port"]) == (session_after["state"], session_after["port"])
    reply = JavaServer(after["address"], after["port"], timeout=2).status(tries=1)
    assert (1, False) == (reply.players.online, answers(session["address"], old_port))


def test_stopping_an_allocated_server_ends_its_session_evicted(platform: Platform) -> None:
    token = new_tenant(platform, "acme")
    ready_server(platform, token)
    _, session = call("POST", f"{platform.api}/v1/sessions", token=token, body={})

    status, stopped = power(platform, token, session["server_id"], "stop")

    _, ended = call("GET", f"{platform.api}/v1/sessions/{session['id']}", token=token)
    assert (202, "Stopped", None) == (status, stopped["state"], stopped["session"])
    assert ("Ended", "Evicted") == (ended["state"], ended["reason"])


def test_forbidden_power_actions_are_409_bad_signals_422_and_others_servers_404(
    platform: Platform,
) -> None:
    token, other = new_tenant(platform, "acme"), new_tenant(platform, "other")
    sid = ready_server(platform, token)["id"]

    results = {
        "start-ready": power(platform, token, sid, "start")[0],
        "stop": power(platform, token, sid, "stop")[0],
        "stop-stopped": power(platform, token, sid, "stop")[0],
        "bad-signal": power(platform, token, sid, "reboot")[0],
        "other-tenant": power(platform, other, sid, "start")[0],
        "missing": power(platform, token, "gs-nope", "start")[0],
    }
    status, conflict = power(platform, token, sid, "stop")

    assert {
        "start-ready": 409,
        "stop": 202,
        "stop-stopped": 409,
        "bad-signal": 422,
        "other-tenant": 404,
        "missing": 404,
    } == results
    assert (409, "Stopped") == (status, conflict["state"])


def walk(plat: Platform, token: str, path: str, query: str) -> list[list[str]]:
    """Every page of a list, following next_cursor; the ids of each page."""
    pages: list[list[str]] = []
    cursor = ""
    while True:
        status, body = call("GET", f"{plat.api}{path}?{query}{cursor}", token=token)
        assert 200 == status, body
        pages.append([item["id"] for item in body["items"]])
        if body["next_cursor"] is None:
            return pages
        cursor = f"&cursor={body['next_cursor']}"


def test_list_filters_and_pages_cover_every_server_once_in_id_order(platform: Platform) -> None:
    token = new_tenant(platform, "acme")
    created = []
    for i in range(7):
        body = {"region": "eu" if i % 2 else "us", "memory_mib": 512 + i, "disk_quota_mib": 2048}
        status, made = call("POST", f"{platform.api}/v1/servers", token=token, body=body)
        assert (201, 512 + i, 2048) == (status, made["memory_mib"], made["disk_quota_mib"])
        created.append(made)
    ready_servers(platform, token, 7)
    ids = sorted(s["id"] for s in created)
    eu = sorted(s["id"] for s in created if s["region"] == "eu")

    pages = walk(platform, token, "/v1/servers", "limit=3")
    eu_pages = walk(platform, token, "/v1/servers", "limit=2&region=eu&state=Ready")

    assert [ids[0:3], ids[3:6], ids[6:7]] == pages
    assert [eu[0:2], eu[2:3]] == eu_pages
    assert [[]] == walk(platform, token, "/v1/servers", "state=Stopped")
    assert [ids] == walk(platform, token, "/v1/servers", "limit=500")


def test_sessions_are_paged_too(platform: Platform) -> None:
    token = new_tenant(platform, "acme")
    for _ in range(5):
        call("POST", f"{platform.api}/v1/servers", token=token, body={})
    ready_servers(platform, token, 5)
    ids = sorted(
        call("POST", f"{platform.api}/v1/sessions", token=token, body={})[1]["id"] for _ in range(5)
    )

    pages = walk(platform, token, "/v1/sessions", "limit=2&state=Active")

    assert [ids[0:2], ids[2:4], ids[4:5]] == pages


BAD_QUERIES = [
    ("limit-0", "/v1/servers?limit=0", "limit"),
    ("limit-501", "/v1/servers?limit=501", "limit"),
    ("limit-word", "/v1/sessions?limit=ten", "limit"),
    ("limit-huge", "/v1/servers?limit=" + "9" * 5000, "limit"),
    ("cursor-junk", "/v1/servers?cursor=!!!", "cursor"),
    ("cursor-not-ours", "/v1/sessions?cursor=aGVsbG8", "cursor"),
    ("region", "/v1/servers?region=no%20spaces", "region"),
]


def test_bad_list_queries_and_bad_sizes_are_422_naming_the_field(platform: Platform) -> None:
    token = new_tenant(platform, "acme")
    expected = {case: (422, field) for case, _, field in BAD_QUERIES}
    actual = {}
    for case, path, _ in BAD_QUERIES:
        status, body = call("GET", f"{platform.api}{path}", token=token)
        actual[case] = (status, ",".join(body.get("fields", {})))
    for field, value in [("memory_mib", 64), ("disk_quota_mib", "big"), ("memory_mib", True)]:
        status, body = call("POST", f"{platform.api}/v1/servers", token=token, body={field: value})
        expected[f"{field}={value}"] = (422, field)
        actual[f"{field}={value}"] = (status, ",".join(body.get("fields", {})))

    assert expected == actual


# One agent in-process: its self check and a listener that cannot start.


async def scheduled(store: Store, node: str) -> str:
    await store.run("HEARTBEAT", node, "127.0.0.1")
    lease = Lease(store=store, holder="ctl", ttl_s=30)
    assert await lease.tick()
    assert lease.term is not None
    await store.create_server(server_id="gs-1", tenant="t1", region="local", version="1.21")
    assert 1 == await store.run("CTL_SCHEDULE", "ctl", lease.term.epoch, "gs-1", node)
    return "gs-1"


def in_process_agent(store: Store, address: str) -> Agent:
    settings = AgentSettings(
        node="n1", address=address, listen=HostPort("127.0.0.1", 0), health_interval_s=0
    )
    return Agent(store=store, settings=settings)


def test_a_listener_that_stops_serving_makes_its_server_unhealthy_until_a_restart(
    redis_url: str,
) -> None:
    async def body() -> list[tuple[str, bool]]:
        store = Store(connect(redis_url))
        agent = in_process_agent(store, "127.0.0.1")
        seen = []
        try:
            sid = await scheduled(store, "n1")
            for step in ("start", "break", "restart"):
                if step == "break":  # the listener dies behind the agent's back
                    agent._listeners[sid].close()
                if step == "restart":
                    await store.power(server_id=sid, tenant="t1", signal=PowerSignal.RESTART)
                    await agent.sync()
                await agent.sync()
                now = await store.get_server(sid)
                assert now is not None
                up = now.port is not None and await asyncio.to_thread(
                    answers, "127.0.0.1", now.port
                )
                seen.append((now.state.value, up))
        finally:
            agent.close()
            await store.redis.aclose()
        return seen

    assert [("Ready", True), ("Unhealthy", False), ("Ready", True)] == asyncio.run(body())


def test_a_listener_that_cannot_start_puts_its_server_in_error(redis_url: str) -> None:
    async def body() -> GameServerState | None:
        store = Store(connect(redis_url))
        try:
            agent = in_process_agent(store, "192.0.2.1")  # TEST-NET-1: not a local address
            sid = await scheduled(store, "n1")
            await agent.sync()
            server = await store.get_server(sid)
            agent.close()
        finally:
            await store.redis.aclose()
        return server.state if server else None

    assert GameServerState.ERROR == asyncio.run(body())
