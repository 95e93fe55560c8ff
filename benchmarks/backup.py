"""Benchmark: time to back up and restore the platform state of many servers (and world files).

Starts two real redis-servers, fills the first through the platform's own Lua scripts
(``--servers`` game servers scheduled by a real controller pass and marked Ready on
``--nodes`` nodes, ``--sessions`` Active sessions each with two world files accounted in the
disk quota, ``--audit`` audit records), writes the world files of those sessions under a
data directory, then times ``refplat.backup.create_backup`` and ``restore_backup`` into the
empty second Redis and data directory, and checks the restored key count. Prints the figures
and saves them to ``reports/bench/backup.json``.

    python -m benchmarks.backup --servers 10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from harness.util.scratch import scratch_redis
from refplat.audit import AuditAction, new_key_line
from refplat.auditlog import AuditLog
from refplat.backup import connect_bytes, create_backup, restore_backup, state_keys
from refplat.controller import Controller, ControllerSettings
from refplat.datadir import DataDir
from refplat.lease import Lease
from refplat.quota import Quota
from refplat.runtime import HostPort
from refplat.store import Store, connect

FILE_BYTES = 16 * 1024
CONCURRENCY = 50


async def _bounded(jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run the jobs, at most CONCURRENCY at a time (the client's pool is bounded)."""
    results: list[Any] = []
    for i in range(0, len(jobs), CONCURRENCY):
        results += await asyncio.gather(*(job() for job in jobs[i : i + CONCURRENCY]))
    return results


async def populate(
    store: Store, args: argparse.Namespace, *, data: DataDir, key_file: Path
) -> None:
    """Fill Redis through the platform's scripts, as a running platform would."""
    lease = Lease(store=store, holder="bench", ttl_s=3600)
    assert await lease.tick() and lease.term is not None
    settings = ControllerSettings(controller_id="bench", listen=HostPort("127.0.0.1", 0))
    controller = Controller(store=store, settings=settings)
    tenants = [f"t-{i}" for i in range(args.tenants)]
    await _bounded(
        [partial(store.create_tenant, tenant_id=t, name=t, token=f"tok-{t}") for t in tenants]
    )
    await _bounded(
        [partial(store.run, "HEARTBEAT", f"n{i}", "127.0.0.1") for i in range(args.nodes)]
    )
    servers = [(f"gs-{i:06d}", tenants[i % len(tenants)]) for i in range(args.servers)]
    await _bounded(
        [
            partial(store.create_server, server_id=s, tenant=t, region="local", version="1.21")
            for s, t in servers
        ]
    )
    await controller.reconcile_pass(lease.term)
    scheduled = [s for s in await store.list_servers() if s.node]
    await _bounded(
        [
            partial(store.run, "MARK_READY", s.id, s.node or "", 30000 + i)
            for i, s in enumerate(scheduled)
        ]
    )
    sessions = [(f"s-{i:06d}", tenants[i % len(tenants)]) for i in range(args.sessions)]
    await _bounded(
        [
            partial(
                store.allocate, tenant=t, region=None, session_id=s, ttl_s=3600, idem_key=f"k-{s}"
            )
            for s, t in sessions
        ]
    )
    quota = Quota(store=store)
    await _bounded([partial(_write_files, quota, data, session=s, tenant=t) for s, t in sessions])
    key_file.write_text(new_key_line(key_id="k1") + "\n")
    audit = AuditLog(redis=store.redis, key_file=key_file, registry=CollectorRegistry())
    for i in range(args.audit):
        await audit.append(actor="admin", action=AuditAction.SERVER_CREATE, object_id=f"gs-{i}")


async def _write_files(quota: Quota, data: DataDir, *, session: str, tenant: str) -> None:
    for path in ("world/level.dat", "world/region/r.0.0.mca"):
        reservation = await quota.begin(session=session, tenant=tenant, path=path, size=FILE_BYTES)
        if reservation.outcome != "ok":
            continue  # the allocation found no Ready server for this session
        content = (session.encode() * FILE_BYTES)[:FILE_BYTES]
        await data.write(
            directory=reservation.directory, path=path, size=FILE_BYTES, chunks=_once(content)
        )
        await quota.commit(session=session, path=path, size=FILE_BYTES)


async def _once(content: bytes) -> Any:
    yield content


async def _fill(url: str, args: argparse.Namespace, *, data: DataDir, key_file: Path) -> None:
    store = Store(connect(url))
    try:
        await populate(store, args, data=data, key_file=key_file)
    finally:
        await store.redis.aclose()


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Populate; back up and restore the state alone, then state and world files together."""
    data_dir, restored_dir = work / "data", work / "restored"
    source_redis, target_redis = (
        scratch_redis(work / "source-redis"),
        scratch_redis(work / "target"),
    )
    with source_redis as source_url, target_redis as target_url:
        started = time.monotonic()
        asyncio.run(_fill(source_url, args, data=DataDir(data_dir), key_file=work / "audit.keys"))
        populate_s = time.monotonic() - started
        with connect_bytes(source_url) as source, connect_bytes(target_url) as target:
            state = create_backup(source, out=work / "state-only", data_dir=None)
            state_back = restore_backup(target, source=state.path, data_dir=None, force=False)
            full = create_backup(source, out=work / "full", data_dir=data_dir)
            full_back = restore_backup(target, source=full.path, data_dir=restored_dir, force=True)
            keys_after = len(state_keys(target))
    if keys_after != full.keys or state_back.keys != state.keys:
        raise SystemExit(f"the restore holds {keys_after} keys, the backup {full.keys}")
    return {
        "populate_s": round(populate_s, 2),
        "keys": state.keys,
        "state_bytes": state.state_bytes,
        "state_backup_s": round(state.seconds, 3),
        "state_restore_s": round(state_back.seconds, 3),
        "state_backup_keys_per_s": round(state.keys / state.seconds),
        "state_restore_keys_per_s": round(state.keys / state_back.seconds),
        "servers_with_files": full.servers,
        "world_files": full.files,
        "world_bytes": full.bytes,
        "full_backup_s": round(full.seconds, 3),
        "full_restore_s": round(full_back.seconds, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--audit", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="refplat-backup-bench-") as work:
        figures = measure(args, Path(work))
    result = {
        "benchmark": "backup",
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "servers": args.servers,
        "nodes": args.nodes,
        "tenants": args.tenants,
        "sessions": args.sessions,
        "audit_records": args.audit,
        **figures,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "backup.json"
    path.write_text(json.dumps(result, indent=2))
    print(
        f"state of {args.servers} servers: {figures['keys']} keys, "
        f"{figures['state_bytes']} bytes compressed: backup {figures['state_backup_s']:.3f} s "
        f"({figures['state_backup_keys_per_s']} keys/s), restore "
        f"{figures['state_restore_s']:.3f} s ({figures['state_restore_keys_per_s']} keys/s)"
    )
    print(
        f"with the world files ({figures['world_files']} files of "
        f"{figures['servers_with_files']} servers, {figures['world_bytes']} bytes): backup "
        f"{figures['full_backup_s']:.3f} s, restore {figures['full_restore_s']:.3f} s"
    )
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
