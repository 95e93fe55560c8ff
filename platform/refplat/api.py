"""The api: a stateless aiohttp app over Redis (tenants, game servers, sessions)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from refplat.audit import AuditAction
from refplat.auditlog import admin_or_tenant, audit_sink
from refplat.backups_api import ServerBackups
from refplat.datadir import DataDir
from refplat.metrics import ApiMetrics, metrics_handler
from refplat.middleware import (
    MAX_BODY_BYTES,
    Caller,
    caller_of,
    error,
    error_middleware,
    json_body,
    metrics_middleware,
    name_field,
    text_field,
)
from refplat.model import (
    DEFAULT_DISK_QUOTA_MIB,
    DEFAULT_MEMORY_MIB,
    EndReason,
    GameServerState,
    SessionState,
)
from refplat.openapi import openapi_handler
from refplat.quota import DEFAULT_QUOTA_BYTES, Quota
from refplat.ratelimit import (
    DEFAULT_PER_SESSION,
    DEFAULT_PER_TOKEN,
    RateLimit,
    RateLimiter,
    rate_limit_middleware,
)
from refplat.runtime import HostPort, serving
from refplat.states import PowerSignal
from refplat.store import CursorError, Store
from refplat.worldfiles import WorldFiles

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_SESSION_TTL_S = 86400.0
READY_PING_TIMEOUT_S = 1.0
READY_KEY_TTL_MS = 10_000
MAX_IDEMPOTENCY_KEY = 200
MEMORY_MIB = (128, 262144)
DISK_QUOTA_MIB = (256, 4194304)
PAGE_LIMIT = (1, 500)
DEFAULT_PAGE_LIMIT = 100
MAX_CURSOR = 400


@dataclass(frozen=True)
class ApiSettings:
    """Command-line settings of one api replica."""

    instance: str
    listen: HostPort
    admin_token_file: Path
    session_ttl_s: float = MAX_SESSION_TTL_S
    audit_key_file: Path | None = None
    rate_limit_per_token: RateLimit = DEFAULT_PER_TOKEN
    rate_limit_per_session: RateLimit = DEFAULT_PER_SESSION
    data_dir: Path | None = None
    session_disk_quota_bytes: int = DEFAULT_QUOTA_BYTES
    # Answer 503 on /readyz whatever the state: a build that fails its readiness (deploy tests).
    fail_readiness: bool = False
    # After SIGTERM, answer 503 on /readyz for this long before closing (the load balancer
    # takes the replica out of rotation first, so a deploy drops no request).
    drain_s: float = 0.0


def read_admin_token(path: Path) -> str:
    """The admin token: the stripped content of its file (must not be empty)."""
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ValueError(f"admin token file {path} is empty; write a token into it")
    return token


class Api:
    """Request handlers of one api replica."""

    def __init__(self, *, store: Store, settings: ApiSettings, admin_token: str) -> None:
        if not 0 < settings.session_ttl_s <= MAX_SESSION_TTL_S:
            raise ValueError(f"session TTL must be in (0, {MAX_SESSION_TTL_S:g}] seconds")
        self._store = store
        self._settings = settings
        self._draining = False
        self._ready_ping: asyncio.Future[Any] | None = None
        self._admin_token = admin_token
        self.metrics = ApiMetrics()
        self._audit = audit_sink(
            redis=store.redis,
            key_file=settings.audit_key_file,
            registry=self.metrics.registry,
            wait=store.wait,
        )
        self._limiter = RateLimiter(
            store=store,
            per_token=settings.rate_limit_per_token,
            per_session=settings.rate_limit_per_session,
        )
        self._files = WorldFiles(
            store=store,
            quota=Quota(store=store, quota_bytes=settings.session_disk_quota_bytes),
            data=DataDir(settings.data_dir) if settings.data_dir else None,
            caller_of=self._caller,
            metrics=self.metrics,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        async with serving(self.web_app(), self._settings.listen):
            log.info("api instance %s serving", self._settings.instance)
            await stop.wait()
            if self._settings.drain_s > 0:
                self._draining = True
                log.info("draining for %g s before closing", self._settings.drain_s)
                await asyncio.sleep(self._settings.drain_s)

    def web_app(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(
            client_max_size=MAX_BODY_BYTES,
            middlewares=[
                metrics_middleware(self.metrics),
                error_middleware,
                rate_limit_middleware(self._limiter, self.metrics),
            ],
        )
        r = app.router
        r.add_get("/healthz", self.healthz)
        r.add_get("/readyz", self.readyz)
        r.add_get("/metrics", metrics_handler(self.metrics.registry))
        r.add_get("/openapi.json", openapi_handler())
        r.add_post("/v1/tenants", self.create_tenant)
        r.add_post("/v1/servers", self.create_server)
        r.add_get("/v1/servers", self.list_servers)
        r.add_get("/v1/servers/{id}", self.get_server)
        r.add_delete("/v1/servers/{id}", self.delete_server)
        r.add_post("/v1/servers/{id}/power", self.power_server)
        r.add_post("/v1/sessions", self.create_session)
        r.add_get("/v1/sessions", self.list_sessions)
        r.add_get("/v1/sessions/{id}", self.get_session)
        r.add_delete("/v1/sessions/{id}", self.end_session)
        self._files.add_routes(r)
        ServerBackups(
            store=self._store,
            data_dir=self._settings.data_dir,
            quota_bytes=self._settings.session_disk_quota_bytes,
            caller_of=self._caller,
            audited=self._audited,
        ).add_routes(r)
        return app

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        if self._settings.fail_readiness or self._draining:
            reason = "draining" if self._draining else "--fail-readiness"
            return web.json_response({"status": "unready", "error": reason}, status=503)
        # Ready means this replica can write to the primary, not only reach a Redis: after a
        # partition heals, the old primary answers pings (and serves its stale data) until
        # Sentinel demotes it, but with min-replicas-to-write it refuses writes (NOREPLICAS).
        # One write at a time, never cancelled by a readiness check that stops waiting for it:
        # after a failover it may first wait on a Sentinel that is cut off (each costs its
        # timeout, with retries) before one that answers moves to the front of the list; a
        # ping cancelled at every check would never get that far (a region outage).
        if self._ready_ping is None or self._ready_ping.done():
            self._ready_ping = asyncio.ensure_future(self._ready_write())
            self._ready_ping.add_done_callback(_consume)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready_ping), READY_PING_TIMEOUT_S)
        except Exception as exc:
            error = str(exc) or f"Redis did not take a write within {READY_PING_TIMEOUT_S:g} s"
            return web.json_response({"status": "unready", "error": error}, status=503)
        return web.json_response({"status": "ok"})

    async def _ready_write(self) -> None:
        """A write of this instance's readiness key (outside the ``refplat:`` keys: backups
        and scans never see it), expiring on its own."""
        key = f"refplat-readiness:{self._settings.instance}"
        await self._store.redis.set(key, str(time.time()), px=READY_KEY_TTL_MS)

    async def _caller(self, request: web.Request) -> Caller:
        return await caller_of(request, store=self._store, admin_token=self._admin_token)

    async def _tenant(self, request: web.Request) -> str:
        caller = await self._caller(request)
        if caller.tenant is None:
            raise error(403, "this endpoint needs a tenant token, not the admin token")
        return caller.tenant

    async def create_tenant(self, request: web.Request) -> web.Response:
        if not (await self._caller(request)).admin:
            raise error(403, "creating tenants needs the admin token")
        body = await json_body(request, allowed=frozenset({"name"}))
        name = text_field(body, "name")
        tenant_id, token = f"t-{uuid.uuid4().hex[:12]}", secrets.token_urlsafe(32)
        await self._store.create_tenant(tenant_id=tenant_id, name=name, token=token)
        log.info("created tenant %s (%s)", tenant_id, name)
        await self._audited(None, AuditAction.TENANT_CREATE, tenant_id, name=name)
        return web.json_response({"id": tenant_id, "name": name, "token": token}, status=201)

    async def create_server(self, request: web.Request) -> web.Response:
        tenant = await self._tenant(request)
        fields = frozenset({"region", "version", "memory_mib", "disk_quota_mib"})
        body = await json_body(request, allowed=fields)
        region = name_field(body, "region", default="local") or "local"
        version = name_field(body, "version", default="1.21") or "1.21"
        memory = _int_field(body, "memory_mib", MEMORY_MIB, default=DEFAULT_MEMORY_MIB)
        disk = _int_field(body, "disk_quota_mib", DISK_QUOTA_MIB, default=DEFAULT_DISK_QUOTA_MIB)
        server_id = f"gs-{uuid.uuid4().hex[:12]}"
        await self._store.create_server(
            server_id=server_id,
            tenant=tenant,
            region=region,
            version=version,
            memory_mib=memory,
            disk_quota_mib=disk,
        )
        await self._audited(tenant, AuditAction.SERVER_CREATE, server_id, region=region)
        server = await self._store.get_server(server_id)
        if server is None:
            # The read reached a Redis that lacks the write (a failover without replica waits).
            raise error(
                503,
                f"server {server_id} was created but cannot be read back yet; "
                f"GET /v1/servers/{server_id} shortly instead of creating it again",
                id=server_id,
            )
        return web.json_response(server.to_json(), status=201)

    async def list_servers(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        state = _state_filter(request, GameServerState)
        region = request.query.get("region")
        if region is not None:
            region = name_field({"region": region}, "region", default=None)
        limit, cursor = _page_query(request)
        page = await _paged(
            self._store.page_servers(
                tenant=caller.tenant, state=state, region=region, limit=limit, cursor=cursor
            )
        )
        items = [s.to_json() for s in page.items]
        return web.json_response({"items": items, "next_cursor": page.next_cursor})

    async def get_server(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        server = await self._store.get_server(request.match_info["id"])
        if server is None or not (caller.admin or server.tenant == caller.tenant):
            raise error(404, "no such server")
        return web.json_response(server.to_json())

    async def delete_server(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        server_id = request.match_info["id"]
        if not await self._store.shutdown_server(server_id=server_id, tenant=caller.tenant):
            raise error(404, "no such server")
        await self._audited(caller.tenant, AuditAction.SERVER_DELETE, server_id)
        await self._sweep()
        server = await self._store.get_server(server_id)
        body = server.to_json() if server else {"id": server_id, "state": "Shutdown"}
        return web.json_response(body, status=202)

    async def power_server(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        body = await json_body(request, allowed=frozenset({"signal"}))
        signal = _signal(body)
        server_id = request.match_info["id"]
        result = await self._store.power(server_id=server_id, tenant=caller.tenant, signal=signal)
        if result.outcome == "missing":
            raise error(404, "no such server")
        if result.outcome == "conflict":
            raise error(
                409,
                f"cannot {signal.value} a server in state {result.state}",
                state=result.state,
            )
        log.info("power %s of server %s: now %s", signal.value, server_id, result.state)
        await self._audited(caller.tenant, AuditAction.SERVER_POWER, server_id, signal=signal.value)
        server = await self._store.get_server(server_id)
        body_out = server.to_json() if server else {"id": server_id, "state": result.state}
        return web.json_response(body_out, status=202)

    async def create_session(self, request: web.Request) -> web.Response:
        tenant = await self._tenant(request)
        body = await json_body(request, allowed=frozenset({"region"}))
        region = name_field(body, "region", default=None)
        idem_key = request.headers.get("Idempotency-Key", "")
        if len(idem_key) > MAX_IDEMPOTENCY_KEY or not idem_key.isprintable():
            raise error(422, "invalid headers", fields={"Idempotency-Key": "at most 200 chars"})
        started = time.perf_counter()
        outcome, session = await self._store.allocate_and_read(
            tenant=tenant,
            region=region,
            session_id=f"s-{uuid.uuid4().hex}",
            ttl_s=self._settings.session_ttl_s,
            idem_key=idem_key,
        )
        self.metrics.observe_allocation(outcome, time.perf_counter() - started)
        if outcome == "none":
            where = f" in region {region}" if region else ""
            raise error(409, f"no Ready game server{where}; create servers or retry later")
        if outcome == "created" and session is not None:
            await self._audited(
                tenant, AuditAction.SESSION_ALLOCATE, session.id, region=region or ""
            )
        if session is None:
            raise error(409, "the idempotency key names a session that no longer exists")
        return web.json_response(session.to_json(), status=201 if outcome == "created" else 200)

    async def list_sessions(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        state = _state_filter(request, SessionState)
        limit, cursor = _page_query(request)
        page = await _paged(
            self._store.page_sessions(tenant=caller.tenant, state=state, limit=limit, cursor=cursor)
        )
        items = [s.to_json() for s in page.items]
        return web.json_response({"items": items, "next_cursor": page.next_cursor})

    async def get_session(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        session = await self._store.get_session(request.match_info["id"])
        if session is None or not (caller.admin or session.tenant == caller.tenant):
            raise error(404, "no such session")
        return web.json_response(session.to_json())

    async def end_session(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        session_id = request.match_info["id"]
        session = await self._store.end_and_read(
            session_id=session_id, tenant=caller.tenant, reason=EndReason.COMPLETED
        )
        if session is not None:
            await self._audited(caller.tenant, AuditAction.SESSION_END, session_id)
            await self._sweep(session_id)
        if session is None:
            raise error(404, "no such session")
        return web.json_response(session.to_json())

    async def _sweep(self, session: str | None = None) -> None:
        """Delete the files of ``session`` (or of every ended session) now (the controller
        sweeps too); never fails."""
        try:
            if session is None:
                await self._files.sweep()
            else:
                await self._files.sweep_session(session)
        except Exception as exc:
            log.warning("deleting the files of ended sessions failed: %s", exc)

    # Audit hook (see refplat.auditlog): one event per successful mutation.

    async def _audited(
        self, tenant: str | None, action: AuditAction, object_id: str, **details: str
    ) -> None:
        actor = admin_or_tenant(tenant)
        await self._audit.record(actor=actor, action=action, object_id=object_id, details=details)


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a background ping's outcome (a readiness check may have stopped waiting)."""
    if not task.cancelled():
        task.exception()


def _state_filter(
    request: web.Request, states: type[GameServerState] | type[SessionState]
) -> str | None:
    value = request.query.get("state")
    if value is None:
        return None
    allowed = [s.value for s in states]
    if value not in allowed:
        raise error(422, "invalid query", fields={"state": f"one of {', '.join(allowed)}"})
    return value


def _int_field(body: dict[str, Any], field: str, bounds: tuple[int, int], *, default: int) -> int:
    """An optional integer field within ``bounds``; 422 naming the field when invalid."""
    value = body.get(field, default)
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise error(422, "invalid fields", fields={field: f"an integer from {low} to {high}"})
    return value


def _signal(body: dict[str, Any]) -> PowerSignal:
    allowed = [s.value for s in PowerSignal]
    value = body.get("signal")
    if not isinstance(value, str) or value not in allowed:
        raise error(422, "invalid fields", fields={"signal": f"one of {', '.join(allowed)}"})
    return PowerSignal(value)


def _page_query(request: web.Request) -> tuple[int, str | None]:
    """``limit`` (default 100) and ``cursor`` of a list request; 422 naming the bad one."""
    raw = request.query.get("limit")
    low, high = PAGE_LIMIT
    limit = DEFAULT_PAGE_LIMIT
    if raw is not None:
        text = raw.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 3 and low <= int(text) <= high):
            raise error(422, "invalid query", fields={"limit": f"an integer from {low} to {high}"})
        limit = int(text)
    cursor = request.query.get("cursor")
    if cursor is not None and not 0 < len(cursor) <= MAX_CURSOR:
        raise error(422, "invalid query", fields={"cursor": "the next_cursor of a previous page"})
    return limit, cursor


async def _paged(page: Awaitable[T]) -> T:
    try:
        return await page
    except CursorError:
        raise error(
            422, "invalid query", fields={"cursor": "the next_cursor of a previous page"}
        ) from None
