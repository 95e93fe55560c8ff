"""The audit log with real Redis and real refplat processes: write, tamper, archive, rotate.

The api and controller tests run real processes; the tamper, archive and writer tests seed
the log in-process (the same AuditLog against the same real Redis) and run the `refplat`
command's main function, to keep this file fast.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry

from refplat.audit import AuditAction, KeyRing, SealedRecord, unseal
from refplat.auditlog import LOG_KEY, AuditLog
from refplat.cli import main
from refplat.redisconn import ReplicationError, ReplicaWait
from refplat.store import connect
from tests.integration.test_refplat_platform import ADMIN_TOKEN, Launcher, call, gauge, wait_for

pytestmark = pytest.mark.integration

CLI_TIMEOUT_S = 20.0
Tamper = Callable[[redis.Redis, int], None]


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "audit.keys"
    assert 0 == main(["audit", "keygen", "--out", str(path)])
    return path


def verify(
    capsys: pytest.CaptureFixture[str], redis_url: str, keys: Path, *extra: str
) -> tuple[int, list[str]]:
    """Exit code and stdout lines of `refplat audit verify` (run in-process)."""
    capsys.readouterr()
    code = main(["audit", "verify", "--redis-url", redis_url, "--key-file", str(keys), *extra])
    return code, capsys.readouterr().out.splitlines()


def events(client: redis.Redis, keys: Path) -> list[tuple[str, str, str]]:
    """Actor, action and key id of every record in the Redis list, in list order."""
    ring = KeyRing.load(keys)
    records = [SealedRecord.from_line(str(line)) for line in client.lrange(LOG_KEY, 0, -1)]
    return [(unseal(r, keys=ring).actor, unseal(r, keys=ring).action, r.kid) for r in records]


def write(redis_url: str, keys: Path, *, writers: int, each: int) -> CollectorRegistry:
    """Append ``writers * each`` events concurrently from ``writers`` clients."""
    registry = CollectorRegistry()

    async def run() -> None:
        clients = [connect(redis_url) for _ in range(writers)]
        logs = [AuditLog(redis=c, key_file=keys, registry=registry) for c in clients[:1]]
        logs += [
            AuditLog(redis=c, key_file=keys, registry=CollectorRegistry()) for c in clients[1:]
        ]
        try:
            await asyncio.gather(
                *(
                    log.record(actor="admin", action=AuditAction.TENANT_CREATE, object_id=f"t-{i}")
                    for i in range(each)
                    for log in logs
                )
            )
        finally:
            for conn in clients:
                await conn.aclose()

    asyncio.run(run())
    return registry


@pytest.fixture
def seeded(redis_url: str, keys: Path) -> Path:
    """Four events in the log; returns the key file."""
    write(redis_url, keys, writers=1, each=4)
    return keys


def new_tenant(api: str) -> str:
    status, body = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "acme"})
    assert 201 == status, body
    return str(body["token"])


def new_server(api: str, token: str) -> str:
    status, body = call("POST", f"{api}/v1/servers", token=token, body={})
    assert 201 == status, body
    return str(body["id"])


def start_audited_api(launcher: Launcher, keys: Path) -> str:
    args = ["--instance", "api-0", "--admin-token-file", str(launcher.token_file)]
    url = launcher.start("api", "api", *args, "--audit-key-file", str(keys))[1]
    launcher.wait_healthy(url)
    return url


def test_api_mutations_across_a_key_rotation_write_events_that_verify(
    launcher: Launcher, client: redis.Redis, keys: Path
) -> None:
    api = start_audited_api(launcher, keys)
    token = new_tenant(api)
    first = new_server(api, token)
    assert 202 == call("DELETE", f"{api}/v1/servers/{first}", token=token)[0]
    assert 0 == main(["audit", "keygen", "--out", str(keys)])  # rotation: k2 becomes current
    new_server(api, token)
    argv = [sys.executable, "-m", "refplat", "audit", "verify", "--redis-url", launcher.redis_url]
    argv += ["--key-file", str(keys)]

    done = subprocess.run(argv, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)

    tenant = events(client, keys)[1][0]
    assert (0, ["audit log intact: 4 records"]) == (done.returncode, done.stdout.splitlines())
    assert [
        ("admin", "tenant.create", "k1"),
        (tenant, "server.create", "k1"),
        (tenant, "server.delete", "k1"),
        (tenant, "server.create", "k2"),
    ] == events(client, keys)
    assert tenant.startswith("tenant:t-")


def test_controller_decisions_are_audited_with_controller_id_and_epoch(
    launcher: Launcher, client: redis.Redis, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = start_audited_api(launcher, keys)
    launcher.start("node-1", "agent", "--node", "node-1")
    launcher.start("a", "controller", "--id", "a", "--audit-key-file", str(keys))
    new_server(api, new_tenant(api))

    def scheduled() -> bool:
        return ("controller:a@1", "controller.schedule") in [e[:2] for e in events(client, keys)]

    wait_for("a controller.schedule event", scheduled, timeout_s=15)
    assert 0 == verify(capsys, launcher.redis_url, keys)[0]


def test_the_leader_controller_archives_the_log_into_segments_that_verify_with_redis(
    launcher: Launcher, client: redis.Redis, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive_dir = launcher.logs.parent / "archive"
    api = start_audited_api(launcher, keys)
    token = new_tenant(api)
    for _ in range(3):
        new_server(api, token)
    ctl_args = ["--id", "a", "--audit-key-file", str(keys)]
    ctl_args += ["--audit-archive-dir", str(archive_dir), "--audit-archive-interval-s", "0.5"]
    url = launcher.start("ctl", "controller", *ctl_args)[1]
    launcher.wait_healthy(url)

    def archived() -> bool:
        return any(archive_dir.glob("*")) and client.llen(LOG_KEY) == 0

    wait_for("the audit log archived and the Redis list emptied", archived, timeout_s=30)
    new_server(api, token)  # one more record, in Redis after the archived ones
    code, lines = verify(capsys, launcher.redis_url, keys, "--archive", str(archive_dir))

    assert (0, ["audit log intact: 5 records"]) == (code, lines)
    assert 4.0 == gauge(url, "refplat_controller_audit_archived_records_total")


def test_keygen_writes_a_private_key_file(keys: Path) -> None:
    assert (0o600, 1) == (keys.stat().st_mode & 0o777, len(KeyRing.load(keys).keys))


def test_concurrent_writers_produce_one_gap_free_chain(
    redis_url: str, client: redis.Redis, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(redis_url, keys, writers=4, each=10)

    assert (40, 0) == (len(events(client, keys)), verify(capsys, redis_url, keys)[0])


def test_a_failed_audit_write_is_counted_not_raised(redis_url: str, keys: Path) -> None:
    registry = CollectorRegistry()

    async def record_without_key_file() -> None:
        conn = connect(redis_url)
        audit_log = AuditLog(redis=conn, key_file=keys, registry=registry)
        keys.unlink()
        try:
            await audit_log.record(actor="admin", action=AuditAction.TENANT_CREATE, object_id="t")
        finally:
            await conn.aclose()

    asyncio.run(record_without_key_file())

    assert 1.0 == registry.get_sample_value("refplat_audit_write_errors_total")


@pytest.mark.parametrize("replicas", [0, 1])
def test_with_a_replica_wait_an_unreplicated_audit_write_is_an_error(
    redis_url: str, keys: Path, replicas: int
) -> None:
    """No replica here: waiting for one fails the append; waiting for none succeeds."""

    async def append() -> int:
        conn = connect(redis_url)
        wait = ReplicaWait(replicas=replicas, timeout_ms=100)
        audit_log = AuditLog(redis=conn, key_file=keys, registry=CollectorRegistry(), wait=wait)
        try:
            return await audit_log.append(
                actor="admin", action=AuditAction.TENANT_CREATE, object_id="t"
            )
        finally:
            await conn.aclose()

    if replicas:
        with pytest.raises(ReplicationError, match="0 of 1 required replica"):
            asyncio.run(append())
    else:
        assert 1 == asyncio.run(append())


def line_at(client: redis.Redis, index: int) -> str:
    return str(client.lindex(LOG_KEY, index))


def flip_ciphertext(client: redis.Redis, index: int) -> None:
    body = json.loads(line_at(client, index))
    ct, middle = body["ct"], len(body["ct"]) // 2
    body["ct"] = ct[:middle] + ("A" if ct[middle] != "A" else "B") + ct[middle + 1 :]
    client.lset(LOG_KEY, index, json.dumps(body, sort_keys=True, separators=(",", ":")))


def drop(client: redis.Redis, index: int) -> None:
    client.lset(LOG_KEY, index, "gone")
    client.lrem(LOG_KEY, 1, "gone")


def duplicate(client: redis.Redis, index: int) -> None:
    line = line_at(client, index)
    client.linsert(LOG_KEY, "AFTER", line, line)


def swap(client: redis.Redis, index: int) -> None:
    a, b = line_at(client, index), line_at(client, index + 1)
    client.lset(LOG_KEY, index, b)
    client.lset(LOG_KEY, index + 1, a)


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        pytest.param(flip_ciphertext, "altered seq 2:", id="flip-a-byte"),
        pytest.param(drop, "removed seq 2:", id="drop"),
        pytest.param(duplicate, "inserted seq 2:", id="duplicate"),
        pytest.param(swap, "reordered seq 2:", id="swap"),
    ],
)
def test_verify_names_the_tampered_seq_and_exits_1(
    *,
    redis_url: str,
    client: redis.Redis,
    seeded: Path,
    capsys: pytest.CaptureFixture[str],
    tamper: Tamper,
    expected: str,
) -> None:
    tamper(client, 1)

    code, lines = verify(capsys, redis_url, seeded)

    assert (1, [expected]) == (code, [line[: len(expected)] for line in lines])


def archive(redis_url: str, keys: Path, out: Path) -> int:
    return main(
        ["audit", "archive", "--redis-url", redis_url, "--key-file", str(keys), "--out", str(out)]
    )


def test_verify_reads_archive_segments_then_redis(
    redis_url: str,
    client: redis.Redis,
    seeded: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "archive"
    assert 0 == archive(redis_url, seeded, out)
    write(redis_url, seeded, writers=1, each=2)

    segments = sorted(p.name for p in out.iterdir())
    assert (["audit-000000000001-000000000004.jsonl.gz"], 2) == (segments, client.llen(LOG_KEY))
    assert (0, 0) == (
        verify(capsys, redis_url, seeded, "--archive", str(out))[0],
        verify(capsys, redis_url, seeded)[0],
    )


def test_a_record_altered_in_a_segment_is_named_at_its_seq(
    redis_url: str, seeded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "archive"
    archive(redis_url, seeded, out)
    (segment,) = out.iterdir()
    lines = gzip.decompress(segment.read_bytes()).decode().splitlines()
    lines[3] = lines[3].replace('"ct":"', '"ct":"AAAA', 1)  # line 1 is the header
    segment.write_bytes(gzip.compress("\n".join(lines).encode()))

    code, problems = verify(capsys, redis_url, seeded, "--archive", str(out))

    assert (1, ["altered seq 3"]) == (code, [p.split(":")[0] for p in problems])


def test_a_missing_segment_is_named_as_removed_seqs(
    redis_url: str, seeded: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "archive"
    archive(redis_url, seeded, out)
    write(redis_url, seeded, writers=1, each=1)

    code, problems = verify(capsys, redis_url, seeded, "--archive", str(tmp_path / "empty"))

    assert (1, ["removed seq 1: seqs 1-4 are missing"]) == (code, problems)


def test_a_garbled_head_pointer_is_named_altered(
    redis_url: str, client: redis.Redis, seeded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client.set("refplat:audit:head", "4:not-hex")

    code, problems = verify(capsys, redis_url, seeded)

    assert 1 == code
    assert "altered seq ?: the redis audit head" in problems[0]


def test_archiving_without_a_key_file_is_a_startup_error(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    argv = ["controller", "--redis-url", redis_url, "--id", "a", "--listen", "127.0.0.1:0"]

    code = main([*argv, "--audit-archive-dir", str(tmp_path / "archive")])

    assert 2 == code
    assert "archiving the audit log needs --audit-key-file" in caplog.text
