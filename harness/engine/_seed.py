"""Seeding a freshly deployed platform: a tenant, its game servers, sessions held over faults."""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.drivers.platform_api import PlatformApi
from harness.model import Endpoints
from harness.targets import CertifiableTarget

log = logging.getLogger(__name__)

CREATE_CONCURRENCY = 8  # game servers created in parallel while seeding


@dataclass(frozen=True)
class Seeded:
    tenant_id: str
    tenant_token_file: Path
    servers: tuple[dict[str, Any], ...]


def seed_platform(
    endpoints: Endpoints, *, servers: int, ready_timeout_s: float, probe_sample: int = 200
) -> Seeded:
    """Create tenant ``harness`` and ``servers`` game servers; wait until all are Ready.

    The blackbox exporter probes ``probe_sample`` of them over TCP every second (all of them
    when there are fewer): probing 10,000 a second would measure the exporter, not the platform.
    """
    admin = PlatformApi(endpoints.api_url, token=endpoints.admin_token())
    tenant = admin.create_tenant("harness")
    token_file = Path(endpoints.admin_token_file).with_name("tenant-token")
    token_file.write_text(tenant["token"])
    os.chmod(token_file, 0o600)
    api = admin.as_token(tenant["token"])
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=CREATE_CONCURRENCY) as pool:
        for future in [pool.submit(api.create_server, region="local") for _ in range(servers)]:
            future.result()
    ready = api.wait_servers_ready(servers, timeout_s=ready_timeout_s)
    log.info(
        "seeded tenant %s with %d Ready game servers in %.1f s",
        tenant["id"],
        len(ready),
        time.monotonic() - started,
    )
    write_probe_targets(endpoints, ready, sample=probe_sample)
    return Seeded(tenant["id"], token_file, tuple(ready))


def deploy_seeded(
    target: CertifiableTarget,
    *,
    servers: int,
    held_sessions: int,
    ready_timeout_s: float,
    probe_sample: int = 200,
) -> Endpoints:
    """Deploy ``target``, seed it, hold sessions, write ``<run_dir>/target.json``.

    The blackbox exporter probes game servers over TCP only where the target says where its
    probe targets go (``gameservers_sd_file``): the kind target has none, its servers being Pods
    the host cannot reach.

    On any failure everything the target started is torn down before the error goes on.
    """
    try:
        endpoints = target.deploy()
        seeded = seed_platform(
            endpoints, servers=servers, ready_timeout_s=ready_timeout_s, probe_sample=probe_sample
        )
        endpoints = replace(endpoints, tenant_token_file=str(seeded.tenant_token_file))
        # Held before any load starts, so load users cannot take every server first.
        hold_sessions(endpoints, held_sessions)
        endpoints.write(Path(endpoints.run_dir) / "target.json")
    except BaseException:
        target.teardown()
        raise
    return endpoints


def write_probe_targets(
    endpoints: Endpoints, servers: list[dict[str, Any]], *, sample: int = 200
) -> None:
    """Point the blackbox TCP probes at the placed game servers (Prometheus file discovery):
    all of them, or an evenly spread ``sample`` of them (the same ones on every call)."""
    sd_file = endpoints.extra.get("gameservers_sd_file")
    if not sd_file:
        return
    if len(servers) > sample:
        ordered = sorted(servers, key=lambda s: str(s.get("id")))
        servers = [ordered[i * len(ordered) // sample] for i in range(sample)]
    groups = [
        {"targets": [f"{s['address']}:{s['port']}"], "labels": {"gameserver": s["id"]}}
        for s in servers
        if s.get("address") and s.get("port")
    ]
    tmp = Path(sd_file).with_suffix(".tmp")
    tmp.write_text(json.dumps(groups))
    tmp.replace(sd_file)


def hold_sessions(endpoints: Endpoints, count: int) -> list[str]:
    """Allocate ``count`` sessions that stay Active across the faults; return their ids."""
    api = PlatformApi(endpoints.api_url, token=endpoints.tenant_token())
    return [api.allocate(key=f"harness-held-{i}")["id"] for i in range(count)]


def active_sessions(endpoints: Endpoints) -> list[str]:
    """Ids of every Active session now (all tenants)."""
    admin = PlatformApi(endpoints.api_url, token=endpoints.admin_token())
    return [s["id"] for s in admin.sessions("Active")]


def preserved_share(endpoints: Endpoints, session_ids: list[str]) -> tuple[float | None, list[str]]:
    """Share of ``session_ids`` that still exist, Active or ended by their tenant; and the lost."""
    if not session_ids:
        return None, []
    admin = PlatformApi(endpoints.api_url, token=endpoints.admin_token())
    lost = []
    for sid in session_ids:
        s = admin.session(sid)
        if s is None or not (s["state"] == "Active" or s.get("reason") == "Completed"):
            lost.append(sid)
    return 1.0 - len(lost) / len(session_ids), lost
