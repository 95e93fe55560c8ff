"""The api: a stateless aiohttp app over Redis (tenants, game servers, sessions)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from refplat.audit import AuditAction
from refplat.auditlog import admin_or_tenant, audit_sink
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
from refplat.model import EndReason, GameServerState, SessionState
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
from refplat.store import Store
from refplat.worldfiles import WorldFiles

log = logging.getLogger(__name__)

MAX_SESSION_TTL_S = 86400.0
READY_PING_TIMEOUT_S = 1.0
MAX_IDEMPOTENCY_KEY = 200


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
        self._admin_token = admin_token
        self.metrics = ApiMetrics()
        self._audit = audit_sink(
            redis=store.redis, key_file=settings.audit_key_file, registry=self.metrics.registry
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
        r.add_post("/v1/sessions", self.create_session)
        r.add_get("/v1/sessions", self.list_sessions)
        r.add_get("/v1/sessions/{id}", self.get_session)
        r.add_delete("/v1/sessions/{id}", self.end_session)
        self._files.add_routes(r)
        return app

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(self._store.redis.ping(), READY_PING_TIMEOUT_S)
        except Exception as exc:
            return web.json_response({"status": "unready", "error": str(exc)}, status=503)
        return web.json_response({"status": "ok"})

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
        body = await json_body(request, allowed=frozenset({"region", "version"}))
        region = name_field(body, "region", default="local") or "local"
        version = name_field(body, "version", default="1.21") or "1.21"
        server_id = f"gs-{uuid.uuid4().hex[:12]}"
        await self._store.create_server(
            server_id=server_id, tenant=tenant, region=region, version=version
        )
        await self._audited(tenant, AuditAction.SERVER_CREATE, server_id, region=region)
        server = await self._store.get_server(server_id)
        assert server is not None
        return web.json_response(server.to_json(), status=201)

    async def list_servers(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        state = _state_filter(request, GameServerState)
        servers = await self._store.list_servers(tenant=caller.tenant)
        items = [s.to_json() for s in servers if state is None or s.state.value == state]
        return web.json_response({"items": items})

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

    async def create_session(self, request: web.Request) -> web.Response:
        tenant = await self._tenant(request)
        body = await json_body(request, allowed=frozenset({"region"}))
        region = name_field(body, "region", default=None)
        idem_key = request.headers.get("Idempotency-Key", "")
        if len(idem_key) > MAX_IDEMPOTENCY_KEY or not idem_key.isprintable():
            raise error(422, "invalid headers", fields={"Idempotency-Key": "at most 200 chars"})
        outcome, session_id = await self._store.allocate(
            tenant=tenant,
            region=region,
            session_id=f"s-{uuid.uuid4().hex}",
            ttl_s=self._settings.session_ttl_s,
            idem_key=idem_key,
        )
        if outcome == "none":
            where = f" in region {region}" if region else ""
            raise error(409, f"no Ready game server{where}; create servers or retry later")
        if outcome == "created":
            await self._audited(
                tenant, AuditAction.SESSION_ALLOCATE, session_id, region=region or ""
            )
        session = await self._store.get_session(session_id)
        if session is None:
            raise error(409, "the idempotency key names a session that no longer exists")
        return web.json_response(session.to_json(), status=201 if outcome == "created" else 200)

    async def list_sessions(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        state = _state_filter(request, SessionState)
        sessions = await self._store.list_sessions(tenant=caller.tenant)
        items = [s.to_json() for s in sessions if state is None or s.state.value == state]
        return web.json_response({"items": items})

    async def get_session(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        session = await self._store.get_session(request.match_info["id"])
        if session is None or not (caller.admin or session.tenant == caller.tenant):
            raise error(404, "no such session")
        return web.json_response(session.to_json())

    async def end_session(self, request: web.Request) -> web.Response:
        caller = await self._caller(request)
        session_id = request.match_info["id"]
        ended = await self._store.end_session(
            session_id=session_id, tenant=caller.tenant, reason=EndReason.COMPLETED
        )
        if ended:
            await self._audited(caller.tenant, AuditAction.SESSION_END, session_id)
            await self._sweep()
        session = await self._store.get_session(session_id) if ended else None
        if session is None:
            raise error(404, "no such session")
        return web.json_response(session.to_json())

    async def _sweep(self) -> None:
        """Delete the files of ended sessions now (the controller sweeps too); never fails."""
        try:
            await self._files.sweep()
        except Exception as exc:
            log.warning("deleting the files of ended sessions failed: %s", exc)

    # Audit hook (see refplat.auditlog): one event per successful mutation.

    async def _audited(
        self, tenant: str | None, action: AuditAction, object_id: str, **details: str
    ) -> None:
        actor = admin_or_tenant(tenant)
        await self._audit.record(actor=actor, action=action, object_id=object_id, details=details)


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
