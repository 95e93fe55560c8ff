"""Backups against real Redis servers, real files and the real ``refplat`` command."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from harness.util.net import free_port
from harness.util.scratch import scratch_redis
from refplat.audit import AuditAction, KeyRing, SealedRecord, new_key_line, unseal
from refplat.auditarchive import verify_log
from refplat.auditlog import AuditLog
from refplat.backup import connect_bytes, create_backup, list_backups, restore_backup
from refplat.controller import Controller, ControllerSettings
from refplat.datadir import DataDir
from refplat.lease import Lease
from refplat.quota import DELETE, Quota
from refplat.ratelimit import RateLimit, RateLimiter
from refplat.runtime import HostPort
from refplat.store import PREFIX, Store, connect
from refplat.worldbackup import (
    NotEmptyError,
    QuotaExceededError,
    pack_server,
    restore_into_session,
)
from tests.integration.test_refplat_platform import (
    ADMIN_TOKEN,
    Launcher,
    allocated_server,
    call,
)
from tests.integration.test_refplat_quota import read_file

pytestmark = pytest.mark.integration

CLI_TIMEOUT_S = 60.0
TTL_TOLERANCE_MS = 10_000
WORLD = {"world/level.dat": b"L" * 3000, "world/region/r.0.0.mca": bytes(range(256)) * 8}


@pytest.fixture
def fresh_redis_url(tmp_path: Path) -> Iterator[str]:
    """A second real, empty redis-server: the restore target."""
    with scratch_redis(tmp_path / "fresh-redis") as url:
        yield url


def run(redis_url: str, body: Any) -> Any:
    async def go() -> Any:
        store = Store(connect(redis_url))
        try:
            return await body(store)
        finally:
            await store.redis.aclose()

    return asyncio.run(go())


async def populate(
    store: Store, *, key_file: Path, data: DataDir | None = None, servers: int = 3
) -> str:
    """Tenants, Ready servers, an Active session s-1 with files, rate limits, audit records;
    return the id of the server of s-1."""
    ctl = Controller(
        store=store, settings=ControllerSettings(controller_id="a", listen=HostPort("127.0.0.1", 0))
    )
    lease = Lease(store=store, holder="a", ttl_s=600)
    assert await lease.tick()
    assert lease.term is not None
    await store.create_tenant(tenant_id="t1", name="acme", token="tok-1")
    await store.create_tenant(tenant_id="t2", name="other", token="tok-2")
    await store.run("HEARTBEAT", "n1", "127.0.0.1")
    for i in range(servers):
        await store.create_server(server_id=f"gs-{i}", tenant="t1", region="local", version="1.21")
    await ctl.reconcile_pass(lease.term)
    for i in range(servers):
        assert 1 == await store.run("MARK_READY", f"gs-{i}", "n1", 30000 + i)
    await store.allocate(tenant="t1", region=None, session_id="s-1", ttl_s=3600, idem_key="k1")
    quota = Quota(store=store, quota_bytes=10_000)
    for path, content in WORLD.items():
        reservation = await quota.begin(session="s-1", tenant="t1", path=path, size=len(content))
        assert "ok" == reservation.outcome
        if data is not None:
            await data.write(
                directory=reservation.directory,
                path=path,
                size=len(content),
                chunks=chunks(content),
            )
        assert await quota.commit(session="s-1", path=path, size=len(content))
    slow = RateLimit(rate=0.001, burst=5)
    await RateLimiter(store=store, per_token=slow, per_session=slow).check(
        token="tok-1", session="s-1"
    )
    key_file.write_text(new_key_line(key_id="k1") + "\n")
    audit = AuditLog(redis=store.redis, key_file=key_file, registry=CollectorRegistry())
    for action in (AuditAction.TENANT_CREATE, AuditAction.SERVER_CREATE):
        await audit.append(actor="admin", action=action, object_id="t1")
    session = await store.get_session("s-1")
    assert session is not None
    return session.server_id


async def chunks(content: bytes) -> Any:
    yield content


def value(client: redis.Redis, name: bytes, kind: bytes) -> Any:
    """A key's value in a form that compares equal whatever its internal order."""
    readers: dict[bytes, Any] = {
        b"string": client.get,
        b"hash": client.hgetall,
        b"set": client.smembers,
        b"zset": lambda n: client.zrange(n, 0, -1, withscores=True),
        b"list": lambda n: client.lrange(n, 0, -1),
    }
    return readers[kind](name)


def snapshot(url: str) -> dict[bytes, tuple[bytes, int, Any]]:
    """Every refplat key: (type, PTTL, value)."""
    client = connect_bytes(url)
    try:
        found = {}
        for name in sorted(client.scan_iter(match=f"{PREFIX}*")):
            kind = client.type(name)
            found[name] = (kind, client.pttl(name), value(client, name, kind))
        return found
    finally:
        client.close()


def test_every_key_comes_back_in_a_fresh_redis_with_its_type_value_and_ttl(
    redis_url: str, fresh_redis_url: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "audit.keys"
    run(redis_url, lambda store: populate(store, key_file=key_file))
    before = snapshot(redis_url)
    with connect_bytes(redis_url) as source:
        created = create_backup(source, out=tmp_path / "backups", data_dir=None)

    with connect_bytes(fresh_redis_url) as target:
        restored = restore_backup(target, source=created.path, data_dir=None, force=False)
    after = snapshot(fresh_redis_url)

    assert (len(before), len(before)) == (created.keys, restored.keys)
    assert sorted(before) == sorted(after)
    assert {k: (t, d) for k, (t, _, d) in before.items()} == {
        k: (t, d) for k, (t, _, d) in after.items()
    }
    ttls = {k: (before[k][1], after[k][1]) for k in before}
    assert all((a == -1) == (b == -1) for a, b in ttls.values()), ttls
    assert all(abs(a - b) <= TTL_TOLERANCE_MS for a, b in ttls.values()), ttls
    with_ttl = {k.decode().split(":")[1] for k, (a, _) in ttls.items() if a >= 0}
    assert {"leader", "idem", "rl"} <= with_ttl
    with redis.Redis.from_url(fresh_redis_url, decode_responses=True) as client:
        report = verify_log(client, keys=KeyRing.load(key_file), archive=None)
    assert (True, 2) == (report.intact, report.records)


def test_a_non_empty_redis_is_refused_and_force_replaces_every_key(
    redis_url: str, fresh_redis_url: str, tmp_path: Path
) -> None:
    run(redis_url, lambda store: populate(store, key_file=tmp_path / "k"))
    before = snapshot(redis_url)
    with connect_bytes(redis_url) as source:
        created = create_backup(source, out=tmp_path / "backups", data_dir=None)
    with connect_bytes(fresh_redis_url) as target:
        target.set(f"{PREFIX}stray", "x")
        target.set("not-ours", "kept")
        with pytest.raises(NotEmptyError, match="--force"):
            restore_backup(target, source=created.path, data_dir=None, force=False)
        untouched = snapshot(fresh_redis_url)
        restore_backup(target, source=created.path, data_dir=None, force=True)
        kept = target.get("not-ours")

    assert [f"{PREFIX}stray".encode()] == list(untouched)
    assert (sorted(before), b"kept") == (sorted(snapshot(fresh_redis_url)), kept)


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_world_files_and_their_quota_usage_round_trip_with_the_state(
    redis_url: str, fresh_redis_url: str, tmp_path: Path
) -> None:
    source_dir, target_dir = tmp_path / "data", tmp_path / "restored"
    server = run(
        redis_url, lambda s: populate(s, key_file=tmp_path / "k", data=DataDir(source_dir))
    )
    with connect_bytes(redis_url) as source:
        created = create_backup(source, out=tmp_path / "backups", data_dir=source_dir)
    with connect_bytes(fresh_redis_url) as target:
        restored = restore_backup(target, source=created.path, data_dir=target_dir, force=False)
        used = target.hget(f"{PREFIX}quota:s-1", "used")

    expected = {f"n1/{server}/s-1/{path}": content for path, content in WORLD.items()}
    assert expected == files_of(target_dir) == files_of(source_dir)
    total = sum(len(c) for c in WORLD.values())
    assert (1, 2, total, str(total).encode()) == (
        restored.servers,
        restored.files,
        restored.bytes,
        used,
    )
    (manifest,) = list_backups(tmp_path / "backups")
    assert (("s-1",), "s-1") == (manifest.world[0].sessions, manifest.world[0].source)


def test_a_restore_into_the_current_session_is_reserved_in_the_quota_and_stays_exact(
    redis_url: str, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    data = DataDir(root)

    async def body(store: Store) -> list[Any]:
        server = await populate(store, key_file=tmp_path / "k", data=data)
        manifest = pack_server(
            root=root, node="n1", server=server, directory=tmp_path / "b", archive="w.tar.gz"
        )
        quota = Quota(store=store, quota_bytes=20_000)
        for path in WORLD:
            assert (
                "ok"
                == (await quota.begin(session="s-1", tenant="t1", path=path, size=DELETE)).outcome
            )
            await data.remove(directory=f"n1/{server}/s-1", path=path)
            assert await quota.commit(session="s-1", path=path, size=DELETE)
        filler = b"f" * 6000
        reservation = await quota.begin(session="s-1", tenant="t1", path="fill", size=6000)
        await data.write(
            directory=reservation.directory, path="fill", size=6000, chunks=chunks(filler)
        )
        assert await quota.commit(session="s-1", path="fill", size=6000)
        seen: list[Any] = [await quota.usage("s-1")]
        small = Quota(store=store, quota_bytes=10_000)
        with pytest.raises(QuotaExceededError) as refused:
            await restore_into_session(
                store=store, quota=small, data=data, directory=tmp_path / "b", manifest=manifest
            )
        seen += [refused.value.used_bytes, await quota.usage("s-1"), sorted(files_of(root))]
        done = await restore_into_session(
            store=store, quota=quota, data=data, directory=tmp_path / "b", manifest=manifest
        )
        again = await restore_into_session(
            store=store, quota=quota, data=data, directory=tmp_path / "b", manifest=manifest
        )
        seen += [(done.files, done.bytes, done.used_bytes), again.used_bytes]
        return [server, *seen]

    total = sum(len(c) for c in WORLD.values())
    server, *seen = run(redis_url, body)
    directory = f"n1/{server}/s-1"

    assert [6000, 6000 + 3000, 6000, [f"{directory}/fill"]] == seen[:4]
    assert [(2, total, 6000 + total), 6000 + total] == seen[4:]  # a second restore: no growth
    expected = {f"{directory}/{p}": c for p, c in WORLD.items()}
    assert {**expected, f"{directory}/fill": b"f" * 6000} == files_of(root)


def refplat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "refplat", "backup", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def test_the_cli_creates_lists_and_restores_and_reports_keys_bytes_and_seconds(
    redis_url: str, fresh_redis_url: str, tmp_path: Path
) -> None:
    data, out = tmp_path / "data", tmp_path / "backups"
    run(redis_url, lambda s: populate(s, key_file=tmp_path / "k", data=DataDir(data)))
    keys = len(snapshot(redis_url))

    create = refplat("create", "--redis-url", redis_url, "--data-dir", str(data), "--out", str(out))
    listed = refplat("list", "--from", str(out), "--json")
    restore = refplat(
        "restore",
        "--redis-url",
        fresh_redis_url,
        "--data-dir",
        str(tmp_path / "r"),
        "--from",
        str(out),
        "--json",
    )

    assert (0, 0, 0) == (create.returncode, listed.returncode, restore.returncode), (
        create.stderr + listed.stderr + restore.stderr
    )
    assert f"{keys} Redis keys" in create.stdout
    assert "1 servers, 2 world files (5048 bytes) in " in create.stdout
    assert create.stdout.rstrip().endswith(" s")
    (backup,) = json.loads(listed.stdout)["backups"]
    report = json.loads(restore.stdout)
    assert (keys, 2, 5048, "restore") == (
        report["keys"],
        report["files"],
        report["bytes"],
        report["command"],
    )
    assert report["seconds"] >= 0 and backup["id"] == report["id"]
    assert files_of(data) == files_of(tmp_path / "r")


def test_bad_inputs_exit_2_with_one_clear_line(
    redis_url: str, fresh_redis_url: str, tmp_path: Path
) -> None:
    run(redis_url, lambda s: populate(s, key_file=tmp_path / "k"))
    out = tmp_path / "backups"
    assert 0 == refplat("create", "--redis-url", redis_url, "--out", str(out)).returncode
    (backup,) = list(out.iterdir())

    missing = refplat("restore", "--redis-url", fresh_redis_url, "--from", str(tmp_path / "nope"))
    no_data = refplat(
        "create", "--redis-url", redis_url, "--data-dir", str(tmp_path / "nope"), "--out", str(out)
    )
    non_empty = refplat("restore", "--redis-url", redis_url, "--from", str(backup))
    dead = refplat("create", "--redis-url", f"redis://127.0.0.1:{free_port()}/0", "--out", str(out))
    state = backup / "state.jsonl.gz"
    state.write_bytes(state.read_bytes()[:-8] + b"garbage!")
    corrupt = refplat("restore", "--redis-url", fresh_redis_url, "--from", str(backup))

    results = {
        "missing": (missing, f"backup directory {tmp_path / 'nope'} does not exist"),
        "no-data": (no_data, f"data directory {tmp_path / 'nope'} does not exist"),
        "non-empty": (non_empty, "already holds refplat:* keys"),
        "dead-redis": (dead, "is it running?"),
        "corrupt": (corrupt, f"backup file {state} is corrupt"),
    }
    for name, (proc, message) in results.items():
        lines = proc.stderr.strip().splitlines()
        assert (2, 1) == (proc.returncode, len(lines)), (name, proc.stderr)
        assert message in lines[0], (name, lines[0])
    assert [] == list(snapshot(fresh_redis_url))
    assert [backup] == list(out.iterdir())  # the failed creates left nothing behind


def test_the_api_snapshots_lists_and_restores_a_servers_world_within_the_quota(
    launcher: Launcher, redis_url: str, tmp_path: Path
) -> None:
    data_dir, key_file = tmp_path / "data", tmp_path / "audit.keys"
    key_file.write_text(new_key_line(key_id="k1") + "\n")
    api_args = ["--session-disk-quota-bytes", "8192", "--audit-key-file", str(key_file)]
    api = launcher.start_with_data_dir(data_dir, *api_args)
    token = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "acme"})[1]["token"]
    other = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "b"})[1]["token"]
    server, session = allocated_server(api, token, timeout_s=15)
    files, backups = (
        f"{api}/v1/sessions/{session['id']}/files",
        f"{api}/v1/servers/{server['id']}/backups",
    )
    usage = f"{api}/v1/sessions/{session['id']}/usage"
    level = bytes(range(256)) * 12  # 3072 bytes
    assert 200 == call("PUT", f"{files}/world/level.dat", token=token, body=level)[0]
    assert 200 == call("PUT", f"{files}/world/r.mca", token=token, body=b"r" * 1000)[0]

    created = call("POST", backups, token=token)
    listed = call("GET", backups, token=ADMIN_TOKEN)
    hidden = call("GET", backups, token=other)[0]
    call("DELETE", f"{files}/world/level.dat", token=token)
    call("PUT", f"{files}/fill", token=token, body=b"f" * 5000)
    restore = f"{backups}/{created[1]['id']}/restore"
    over = call("POST", restore, token=token)
    after_refusal = (
        call("GET", usage, token=token)[1]["used_bytes"],
        call("GET", f"{files}/world/level.dat", token=token)[0],
    )
    call("DELETE", f"{files}/fill", token=token)
    restored = call("POST", restore, token=ADMIN_TOKEN)
    unknown = call("POST", f"{backups}/b-20200101T000000Z-000000/restore", token=token)[0]

    assert (201, 2, 4072, session["id"]) == (
        created[0],
        created[1]["files"],
        created[1]["bytes"],
        created[1]["session"],
    )
    assert (200, [created[1]], 404) == (listed[0], listed[1]["items"], hidden)
    assert (507, 6000, 8192) == (over[0], over[1]["used_bytes"], over[1]["quota_bytes"])
    assert (6000, 404) == after_refusal
    assert (200, 2, 4072, 4072) == (
        restored[0],
        restored[1]["files"],
        restored[1]["bytes"],
        restored[1]["used_bytes"],
    )
    assert level == read_file(f"{files}/world/level.dat", token)
    assert (4072, 404) == (call("GET", usage, token=token)[1]["used_bytes"], unknown)
    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        lines = client.lrange("refplat:audit:log", 0, -1)
    keys = KeyRing.load(key_file)
    actions = [unseal(SealedRecord.from_line(line), keys=keys).action for line in lines]
    assert ["backup.create", "backup.restore"] == [a for a in actions if a.startswith("backup.")]
