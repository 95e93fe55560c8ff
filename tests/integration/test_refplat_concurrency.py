"""The reference platform under concurrent allocation: 3 api replicas, 2 controllers, 3 agents.

200 allocations (each with its own Idempotency-Key, some keys sent twice to different
replicas at once) race across the replicas while the leader controller is SIGKILLed.
Afterwards every acknowledged session must exist, no server may serve two Active sessions,
and a duplicated key must name one session.
"""

from __future__ import annotations

import functools
import json
import resource
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.test_refplat_platform import (
    Launcher,
    Platform,
    call,
    gauge,
    is_ok,
    leader_of,
    new_tenant,
    wait_for,
)

pytestmark = pytest.mark.integration

API_REPLICAS = 3
NODES = ("node-1", "node-2", "node-3")
SERVERS = 220
ALLOCATIONS = 200
DUPLICATED = 20  # of the 200 keys, this many are also sent, at once, to another replica
KILL_AFTER = ALLOCATIONS // 3  # responses seen before the leader controller is SIGKILLed
LOW_NOFILE = 1024
MAX_PAGES = 20
STARTUP_TIMEOUT_S = 60  # generous: eight Python processes start at once on a busy 2-core box
FIRST_RECONCILE = "refplat_controller_leader_first_reconcile_timestamp_seconds"


@dataclass(frozen=True)
class Reply:
    """One allocation request and what came back."""

    key: str
    replica: int
    status: int
    body: Any


def start_platform(launcher: Launcher) -> tuple[Platform, list[str]]:
    """3 agents, 2 controllers and 3 api replicas (distinct instances), all healthy."""
    agents = [launcher.start(node, "agent", "--node", node) for node in NODES]
    controllers = {name: launcher.start(name, "controller", "--id", name) for name in ("a", "b")}
    apis = [
        launcher.start(
            f"api-{i}",
            "api",
            *("--instance", f"api-{i}", "--admin-token-file", str(launcher.token_file)),
            *("--rate-limit-per-token", "0"),
        )[1]
        for i in range(API_REPLICAS)
    ]
    for url in [*apis, *(url for _, url in [*agents, *controllers.values()])]:
        wait_healthy(url)
    plat = Platform(api=apis[0], controllers=controllers, agents=[proc for proc, _ in agents])
    return plat, apis


def wait_healthy(url: str) -> None:
    healthz = f"{url}/healthz"
    wait_for(healthz, functools.partial(is_ok, healthz), timeout_s=STARTUP_TIMEOUT_S)


def list_all(url: str, token: str) -> list[dict[str, Any]]:
    """Every item of a paginated list (``limit`` and ``next_cursor``), in at most 20 pages."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(MAX_PAGES):
        query = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(query)}"
        status, body = call("GET", page, token=token)
        assert 200 == status, body
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items
    raise AssertionError(f"{url} has more than {MAX_PAGES} pages")


def create_ready_servers(apis: list[str], token: str, count: int) -> list[dict[str, Any]]:
    """Create ``count`` servers through every replica in turn and wait until all are Ready."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        urls = [f"{apis[i % len(apis)]}/v1/servers" for i in range(count)]
        statuses = list(pool.map(lambda url: call("POST", url, token=token, body={})[0], urls))
    assert [201] * count == statuses

    def probe() -> list[dict[str, Any]] | None:
        items = list_all(f"{apis[0]}/v1/servers", token)
        ready = [s for s in items if s["state"] == "Ready"]
        return ready if len(ready) == count else None

    return wait_for(f"{count} Ready servers", probe, timeout_s=STARTUP_TIMEOUT_S)


def allocate_all(
    apis: list[str], token: str, *, keys: list[str], on_reply: Callable[[int], None]
) -> list[Reply]:
    """Send every allocation at once (key i to replica i mod 3, duplicates to i+1 mod 3)."""
    requests = [(key, i % len(apis)) for i, key in enumerate(keys)]
    requests += [(key, (i + 1) % len(apis)) for i, key in enumerate(keys[:DUPLICATED])]
    start = threading.Barrier(len(requests))
    done = 0
    lock = threading.Lock()

    def send(key: str, replica: int) -> Reply:
        nonlocal done
        start.wait(timeout=30)
        status, body = call_with_key(f"{apis[replica]}/v1/sessions", token=token, key=key)
        with lock:
            done += 1
            seen = done
        on_reply(seen)
        return Reply(key=key, replica=replica, status=status, body=body)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        futures = [pool.submit(send, key, replica) for key, replica in requests]
        return [future.result(timeout=60) for future in futures]


def call_with_key(url: str, *, token: str, key: str) -> tuple[int, Any]:
    """POST an allocation with an Idempotency-Key (``call`` sends no custom headers)."""
    request = urllib.request.Request(url, data=b"{}", method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    request.add_header("Idempotency-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"null")


def test_200_concurrent_allocations_across_replicas_during_a_failover_lose_nothing(
    launcher: Launcher,
) -> None:
    plat, apis = start_platform(launcher)
    token = new_tenant(plat, "load")
    ready_before = len(create_ready_servers(apis, token, SERVERS))
    leader = wait_for("a leader", lambda: leader_of(plat), timeout_s=30)
    killed = threading.Event()

    def kill_leader_midway(seen: int) -> None:
        if seen >= KILL_AFTER and not killed.is_set():
            killed.set()
            plat.controllers[leader][0].kill()

    keys = [f"alloc-{i:03d}" for i in range(ALLOCATIONS)]
    replies = allocate_all(apis, token, keys=keys, on_reply=kill_leader_midway)

    assert killed.is_set()
    standby_url = next(url for name, (_, url) in plat.controllers.items() if name != leader)
    wait_for(
        "the standby's first reconcile", lambda: gauge(standby_url, FIRST_RECONCILE), timeout_s=30
    )
    check_outcome(apis, token, replies=replies, ready_before=ready_before)
    check_redis(launcher.redis_url, replies)


def check_outcome(apis: list[str], token: str, *, replies: list[Reply], ready_before: int) -> None:
    statuses = Counter(r.status for r in replies)
    assert set(statuses) <= {200, 201, 409}, [r for r in replies if r.status not in (200, 201, 409)]
    acknowledged = [r for r in replies if r.status in (200, 201)]
    sessions_by_key: dict[str, set[str]] = {}
    for reply in acknowledged:
        sessions_by_key.setdefault(reply.key, set()).add(reply.body["id"])
    assert dict.fromkeys(sessions_by_key, 1) == {k: len(v) for k, v in sessions_by_key.items()}
    session_ids = {sid for ids in sessions_by_key.values() for sid in ids}
    assert min(ALLOCATIONS, ready_before) == statuses[201] == len(session_ids)

    active = list_all(f"{apis[1]}/v1/sessions?state=Active", token)
    assert session_ids == {s["id"] for s in active}  # nothing lost, nothing extra
    assert [] == [sid for sid, n in Counter(s["server_id"] for s in active).items() if n > 1]

    servers = {s["id"]: s for s in list_all(f"{apis[2]}/v1/servers", token)}
    expected = {s["server_id"]: ("Allocated", s["id"]) for s in active}
    assert expected == {sid: (servers[sid]["state"], servers[sid]["session"]) for sid in expected}
    ready_after = sum(1 for s in servers.values() if s["state"] == "Ready")
    assert ready_before == len(session_ids) + ready_after
    if statuses[409]:
        assert 0 == ready_after  # a 409 only when no Ready server was left
    for reply in acknowledged:  # each one readable, by id, from every replica
        for api in apis:
            status, session = call("GET", f"{api}/v1/sessions/{reply.body['id']}", token=token)
            assert (200, "Active", reply.body["server_id"]) == (
                status,
                session["state"],
                session["server_id"],
            )


def check_redis(redis_url: str, replies: list[Reply]) -> None:
    """Every acknowledged session is in Redis, Active, on the server it was acknowledged with."""
    acknowledged = {r.body["id"]: r.body["server_id"] for r in replies if r.status in (200, 201)}
    client = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    try:
        stored = {sid: client.hgetall(f"refplat:session:{sid}") for sid in acknowledged}
        active = set(client.zrange("refplat:sessions:active", 0, -1))
    finally:
        client.close()
    assert {sid: ("Active", server) for sid, server in acknowledged.items()} == {
        sid: (raw.get("state"), raw.get("server_id")) for sid, raw in stored.items()
    }
    assert set(acknowledged) == active


def test_an_agent_raises_its_open_files_soft_limit_to_the_hard_limit(launcher: Launcher) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= LOW_NOFILE:
        pytest.skip(f"the hard open files limit ({hard}) leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_NOFILE, hard))
    try:  # the agent inherits the low soft limit
        proc, url = launcher.start("node-1", "agent", "--node", "node-1")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    wait_healthy(url)

    limits = Path(f"/proc/{proc.pid}/limits").read_text().splitlines()
    (line,) = [line for line in limits if line.startswith("Max open files")]

    assert [str(hard), str(hard)] == line.split()[3:5]
