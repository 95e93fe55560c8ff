"""Disk quotas: the Lua accounting against a real Redis, and world files through a real api."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from refplat.controller import Controller, ControllerSettings
from refplat.datadir import DataDir
from refplat.lease import Lease
from refplat.model import EndReason
from refplat.quota import DELETE, Quota
from refplat.runtime import HostPort
from refplat.store import PREFIX, Store, connect
from tests.integration.test_refplat_platform import (
    ADMIN_TOKEN,
    HTTP_TIMEOUT_S,
    Launcher,
    allocated_server,
    call,
)

pytestmark = pytest.mark.integration


def with_store(redis_url: str, body: Callable[[Store], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        store = Store(connect(redis_url))
        try:
            return await body(store)
        finally:
            await store.redis.aclose()

    return asyncio.run(run())


async def active_session(store: Store, *, data_dir: Path | None = None, ttl_s: float = 60) -> Any:
    """Walk one server of tenant t1 on node n1 to Ready and allocate session s-1 on it."""
    settings = ControllerSettings(
        controller_id="a", listen=HostPort("127.0.0.1", 0), data_dir=data_dir
    )
    ctl = Controller(store=store, settings=settings)
    lease = Lease(store=store, holder="a", ttl_s=5)
    assert await lease.tick()
    term = lease.term
    assert term is not None
    await store.run("HEARTBEAT", "n1", "127.0.0.1")
    await store.create_server(server_id="gs-1", tenant="t1", region="local", version="1.21")
    await ctl.reconcile_pass(term)
    assert 1 == await store.run("MARK_READY", "gs-1", "n1", 30000)
    await store.allocate(tenant="t1", region=None, session_id="s-1", ttl_s=ttl_s, idem_key="")
    return ctl, term


async def put(quota: Quota, path: str, size: int) -> str:
    """Reserve and commit one write (or DELETE); return the outcome of the reservation."""
    reservation = await quota.begin(session="s-1", tenant="t1", path=path, size=size)
    if reservation.outcome == "ok":
        assert await quota.commit(session="s-1", path=path, size=size)
    return reservation.outcome


def test_usage_is_exact_across_writes_overwrites_and_deletes(redis_url: str) -> None:
    async def body(store: Store) -> list[tuple[str, int]]:
        await active_session(store)
        quota = Quota(store=store, quota_bytes=10_000)
        steps = [("a", 3000), ("b", 4000), ("a", 1000), ("a", 6000), ("b", DELETE), ("c", 0)]
        trace = []
        for path, size in steps:
            outcome = await put(quota, path, size)
            trace.append((outcome, await quota.usage("s-1")))
        return trace

    expected = [("ok", 3000), ("ok", 7000), ("ok", 5000), ("ok", 10000), ("ok", 6000), ("ok", 6000)]
    assert expected == with_store(redis_url, body)


def test_a_write_past_the_quota_is_refused_and_changes_nothing(redis_url: str) -> None:
    async def body(store: Store) -> tuple[str, str, str, int]:
        await active_session(store)
        quota = Quota(store=store, quota_bytes=4096)
        first = await put(quota, "a", 4000)
        over = await put(quota, "b", 97)
        missing = await put(quota, "nope", DELETE)
        return first, over, missing, await quota.usage("s-1")

    assert ("ok", "full", "missing", 4000) == with_store(redis_url, body)


def test_concurrent_writes_never_pass_the_quota(redis_url: str) -> None:
    async def body(store: Store) -> tuple[list[str], int]:
        await active_session(store)
        quota = Quota(store=store, quota_bytes=10 * 1024)
        outcomes = await asyncio.gather(*(put(quota, f"f{i}", 1024) for i in range(50)))
        return sorted(set(outcomes)), outcomes.count("ok") * 1024 - await quota.usage("s-1")

    outcomes, discrepancy = with_store(redis_url, body)

    assert (["full", "ok"], 0) == (outcomes, discrepancy)


def test_an_aborted_write_refunds_its_reservation_and_a_dead_writers_expires(
    redis_url: str,
) -> None:
    async def body(store: Store) -> list[Any]:
        await active_session(store)
        quota = Quota(store=store, quota_bytes=10_000, write_lease_s=0.2)
        seen = []
        await quota.begin(session="s-1", tenant="t1", path="a", size=3000)
        seen.append(await quota.usage("s-1"))
        await quota.abort(session="s-1", path="a")
        seen.append(await quota.usage("s-1"))
        await quota.begin(session="s-1", tenant="t1", path="a", size=9000)  # the writer dies
        seen.append((await quota.begin(session="s-1", tenant="t1", path="a", size=1)).outcome)
        await asyncio.sleep(0.3)
        seen.append(await put(quota, "a", 2000))
        seen.append(await quota.usage("s-1"))
        return seen

    assert [3000, 0, "busy", "ok", 2000] == with_store(redis_url, body)


def test_only_the_tenant_of_an_active_session_may_write(redis_url: str) -> None:
    async def body(store: Store) -> list[str]:
        await active_session(store)
        quota = Quota(store=store, quota_bytes=10_000)
        other = await quota.begin(session="s-1", tenant="t2", path="a", size=1)
        unknown = await quota.begin(session="s-nope", tenant="t1", path="a", size=1)
        await store.end_session(session_id="s-1", tenant=None, reason=EndReason.COMPLETED)
        ended = await quota.begin(session="s-1", tenant="t1", path="a", size=1)
        return [other.outcome, unknown.outcome, ended.outcome]

    assert ["inactive"] * 3 == with_store(redis_url, body)


def test_an_expired_sessions_files_and_usage_are_deleted_by_the_controller(
    redis_url: str, tmp_path: Path
) -> None:
    data = DataDir(tmp_path)

    async def body(store: Store) -> tuple[list[Path], Any, Any]:
        ctl, term = await active_session(store, data_dir=tmp_path, ttl_s=0.3)
        quota = Quota(store=store, quota_bytes=10_000)
        reservation = await quota.begin(session="s-1", tenant="t1", path="w/level.dat", size=2)
        await data.write(
            directory=reservation.directory, path="w/level.dat", size=2, chunks=_chunks(b"hi")
        )
        assert await quota.commit(session="s-1", path="w/level.dat", size=2)
        written = [p for p in tmp_path.rglob("*") if p.is_file()]
        await asyncio.sleep(0.4)
        await ctl.reconcile_pass(term)
        session = await store.get_session("s-1")
        keys = await store.redis.keys(f"{PREFIX}quota:*")
        return written, session, keys

    written, session, keys = with_store(redis_url, body)

    assert [tmp_path / "n1/gs-1/s-1/w/level.dat"] == written
    assert (EndReason.EXPIRED, [], []) == (session.reason, list(tmp_path.iterdir()), keys)


async def _chunks(data: bytes) -> Any:
    yield data


def read_file(url: str, token: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        return bytes(response.read())


def counter(api: str, name: str) -> float:
    with urllib.request.urlopen(f"{api}/metrics", timeout=HTTP_TIMEOUT_S) as response:
        lines = response.read().decode().splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith(name))


def test_world_files_go_to_the_servers_node_directory_within_the_quota_and_go_with_the_session(
    launcher: Launcher, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    api = launcher.start_with_data_dir(data_dir, "--session-disk-quota-bytes", "4096")
    token = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "acme"})[1]["token"]
    other = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "b"})[1]["token"]
    server, session = allocated_server(api, token, timeout_s=15)
    files = f"{api}/v1/sessions/{session['id']}/files"

    codes = [
        call("PUT", f"{files}/world/level.dat", token=token, body=b"x" * 3000)[0],
        call("PUT", f"{files}/world/big.mca", token=token, body=b"y" * 1097)[0],
        call("PUT", f"{files}/world/level.dat", token=token, body=b"z" * 1000)[0],
        call("PUT", f"{files}/world/big.mca", token=token, body=b"y" * 1097)[0],
        call("PUT", f"{files}/world/.hidden", token=token, body=b"!")[0],
        call("PUT", f"{files}/world/%2E%2E/%2E%2E/x", token=token, body=b"!")[0],
        call("PUT", f"{files}/w", token=other, body=b"!")[0],
        call("PUT", f"{files}/w", token=ADMIN_TOKEN, body=b"!")[0],
        call("DELETE", f"{files}/world/big.mca", token=token)[0],
        call("DELETE", f"{files}/world/big.mca", token=token)[0],
    ]
    content = read_file(f"{files}/world/level.dat", token)
    usage = call("GET", f"{api}/v1/sessions/{session['id']}/usage", token=token)[1]
    on_disk = data_dir / "node-1" / server["id"] / session["id"] / "world" / "level.dat"

    assert [200, 507, 200, 200, 422, 422, 404, 403, 200, 404] == codes
    assert (b"z" * 1000, {"used_bytes": 1000, "quota_bytes": 4096}) == (content, usage)
    assert (True, 1.0) == (on_disk.is_file(), counter(api, "refplat_api_quota_rejections_total"))

    assert 200 == call("DELETE", f"{api}/v1/sessions/{session['id']}", token=token)[0]
    assert [] == list(data_dir.rglob("*"))
    usage = call("GET", f"{api}/v1/sessions/{session['id']}/usage", token=token)[1]
    assert 0 == usage["used_bytes"]
    assert 409 == call("PUT", f"{files}/again", token=token, body=b"x")[0]
