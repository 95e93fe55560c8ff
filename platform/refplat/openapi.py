"""The OpenAPI 3.0 document of the api, written by hand and served at ``/openapi.json``.

A test holds it to the routes the aiohttp app registers (every route in the document and
every documented operation a route), and schemathesis runs it against a real api.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from refplat.datadir import MAX_PATH_CHARS
from refplat.middleware import MAX_BODY_BYTES
from refplat.model import DEFAULT_DISK_QUOTA_MIB, DEFAULT_MEMORY_MIB, GameServerState, SessionState
from refplat.states import PowerSignal

JsonObject = dict[str, Any]

ERRORS = {
    400: "Bad request.",
    401: "Missing or unknown bearer token.",
    403: "The token may not do this (admin versus tenant).",
    404: "No such object (or not the caller's).",
    409: "Conflict with the current state; see the message.",
    411: "The request has no Content-Length.",
    413: f"The body is too large (JSON bodies: at most {MAX_BODY_BYTES} bytes).",
    422: "Invalid input; ``fields`` names each bad field.",
    429: "Rate limit of the token or session exceeded; retry after Retry-After seconds.",
    501: "World files are off (the api runs without --data-dir).",
    503: "Redis does not answer.",
    507: "The write would pass the session's disk quota.",
}
NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
MEMORY_MIB = {"type": "integer", "minimum": 128, "maximum": 262144, "default": DEFAULT_MEMORY_MIB}
DISK_QUOTA_MIB = {
    "type": "integer",
    "minimum": 256,
    "maximum": 4194304,
    "default": DEFAULT_DISK_QUOTA_MIB,
}
NEXT_CURSOR = {
    "type": "string",
    "nullable": True,
    "description": "Pass as ``cursor`` for the next page; null on the last page.",
}


def _ref(name: str) -> JsonObject:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], **props: JsonObject) -> JsonObject:
    return {"type": "object", "required": required, "properties": props}


def _nullable(schema: JsonObject) -> JsonObject:
    return {**schema, "nullable": True}


SCHEMAS: JsonObject = {
    "Error": {
        **_obj(["error"], error={"type": "string"}),
        "additionalProperties": True,
    },
    "Status": _obj(["status"], status={"type": "string"}, error={"type": "string"}),
    "TenantCreate": {
        **_obj(["name"], name={"type": "string", "minLength": 1, "maxLength": 128}),
        "additionalProperties": False,
    },
    "Tenant": _obj(
        ["id", "name", "token"], id={"type": "string"}, name={"type": "string"}, token={}
    ),
    "ServerCreate": {
        **_obj([], region=NAME, version=NAME, memory_mib=MEMORY_MIB, disk_quota_mib=DISK_QUOTA_MIB),
        "additionalProperties": False,
    },
    "Power": {
        **_obj(["signal"], signal={"type": "string", "enum": [s.value for s in PowerSignal]}),
        "additionalProperties": False,
    },
    "Server": _obj(
        ["id", "tenant", "region", "version", "state"],
        id={"type": "string"},
        tenant={"type": "string"},
        region={"type": "string"},
        version={"type": "string"},
        state={"type": "string", "enum": [s.value for s in GameServerState]},
        node=_nullable({"type": "string"}),
        address=_nullable({"type": "string"}),
        port=_nullable({"type": "integer"}),
        session=_nullable({"type": "string"}),
        memory_mib={"type": "integer"},
        disk_quota_mib={"type": "integer"},
        restarting={"type": "boolean"},
        lost=_nullable({"type": "string"}),
    ),
    "ServerList": _obj(
        ["items", "next_cursor"],
        items={"type": "array", "items": _ref("Server")},
        next_cursor=NEXT_CURSOR,
    ),
    "SessionCreate": {**_obj([], region=NAME), "additionalProperties": False},
    "Session": _obj(
        ["id", "tenant", "server_id", "state", "created_at", "expires_at"],
        id={"type": "string"},
        tenant={"type": "string"},
        server_id={"type": "string"},
        address=_nullable({"type": "string"}),
        port=_nullable({"type": "integer"}),
        state={"type": "string", "enum": [s.value for s in SessionState]},
        reason=_nullable({"type": "string"}),
        created_at={"type": "number"},
        expires_at={"type": "number"},
        replacements={"type": "integer", "minimum": 0},
    ),
    "SessionList": _obj(
        ["items", "next_cursor"],
        items={"type": "array", "items": _ref("Session")},
        next_cursor=NEXT_CURSOR,
    ),
    "Usage": _obj(
        ["used_bytes", "quota_bytes"],
        used_bytes={"type": "integer", "minimum": 0},
        quota_bytes={"type": "integer", "minimum": 0},
    ),
    "FileWritten": _obj(
        ["path", "size", "used_bytes", "quota_bytes"],
        path={"type": "string"},
        size={"type": "integer"},
        used_bytes={"type": "integer"},
        quota_bytes={"type": "integer"},
    ),
    # Backups of a server's world files (refplat.backups_api)
    "Backup": _obj(
        ["id", "server", "created_at", "files", "bytes", "sha256"],
        id={"type": "string"},
        server={"type": "string"},
        session=_nullable({"type": "string"}),
        created_at={"type": "number"},
        files={"type": "integer", "minimum": 0},
        bytes={"type": "integer", "minimum": 0},
        sha256={"type": "string"},
    ),
    "BackupList": _obj(["items"], items={"type": "array", "items": _ref("Backup")}),
    "BackupRestored": _obj(
        ["backup", "server", "session", "files", "bytes", "used_bytes", "quota_bytes", "seconds"],
        backup={"type": "string"},
        server={"type": "string"},
        session={"type": "string"},
        files={"type": "integer", "minimum": 0},
        bytes={"type": "integer", "minimum": 0},
        used_bytes={"type": "integer", "minimum": 0},
        quota_bytes={"type": "integer", "minimum": 0},
        seconds={"type": "number", "minimum": 0},
    ),
}


def _json(schema: str) -> JsonObject:
    return {"content": {"application/json": {"schema": _ref(schema)}}}


def _responses(ok: dict[int, tuple[str, JsonObject]], errors: list[int]) -> JsonObject:
    out: JsonObject = {
        str(code): {"description": text, **body} for code, (text, body) in ok.items()
    }
    for code in errors:
        out[str(code)] = {"description": ERRORS[code], **_json("Error")}
    if 429 in errors:
        retry = {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds."}
        out["429"]["headers"] = {"Retry-After": retry}
    return out


def _op(
    summary: str,
    ok: dict[int, tuple[str, JsonObject]],
    errors: list[int],
    *,
    body: JsonObject | None = None,
    params: list[JsonObject] | None = None,
    public: bool = False,
) -> JsonObject:
    op: JsonObject = {"summary": summary, "responses": _responses(ok, errors)}
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = params
    if public:
        op["security"] = []
    return op


def _param(name: str, where: str, schema: JsonObject, *, required: bool = True) -> JsonObject:
    return {"name": name, "in": where, "required": required, "schema": schema}


ID = _param("id", "path", {"type": "string", "minLength": 1, "maxLength": 64})
PATH = _param(
    "path",
    "path",
    {"type": "string", "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"},
)
PATH["description"] = (
    f"A relative path (at most {MAX_PATH_CHARS} characters, 8 components); "
    "components may not start with '.'."
)


def _state(states: type[GameServerState] | type[SessionState]) -> JsonObject:
    return _param(
        "state", "query", {"type": "string", "enum": [s.value for s in states]}, required=False
    )


LIST = [
    _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 500}, required=False),
    _param("cursor", "query", {"type": "string", "minLength": 1, "maxLength": 400}, required=False),
]
LIST[0]["description"] = "Page size (default 100); items are ordered by id."
LIST[1]["description"] = "The ``next_cursor`` of the previous page (opaque)."
REGION = _param("region", "query", NAME, required=False)


def _body(schema: str, *, required: bool = False) -> JsonObject:
    return {"required": required, **_json(schema)}


AUTH = [401, 429]
JSON_BODY = [401, 403, 413, 422, 429]
BINARY = {
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
}
IDEMPOTENCY = _param(
    "Idempotency-Key", "header", {"type": "string", "maxLength": 200}, required=False
)
STATUS = ("Status.", _json("Status"))

PATHS: JsonObject = {
    "/healthz": {"get": _op("Liveness.", {200: STATUS}, [], public=True)},
    "/readyz": {
        "get": _op("Readiness (Redis answers).", {200: STATUS, 503: STATUS}, [], public=True)
    },
    "/metrics": {
        "get": _op(
            "Prometheus metrics.",
            {200: ("Metrics.", {"content": {"text/plain": {"schema": {"type": "string"}}}})},
            [],
            public=True,
        )
    },
    "/openapi.json": {
        "get": _op(
            "This document.",
            {
                200: (
                    "OpenAPI 3.0.",
                    {"content": {"application/json": {"schema": {"type": "object"}}}},
                )
            },
            [],
            public=True,
        )
    },
    "/v1/tenants": {
        "post": _op(
            "Create a tenant (admin); the answer holds its token, shown once.",
            {201: ("Created.", _json("Tenant"))},
            JSON_BODY,
            body=_body("TenantCreate", required=True),
        )
    },
    "/v1/servers": {
        "post": _op(
            "Create a game server (tenant).",
            {201: ("Created (state Creating).", _json("Server"))},
            JSON_BODY,
            body=_body("ServerCreate"),
        ),
        "get": _op(
            "List servers (the admin sees all), filtered by state and region, by pages.",
            {200: ("Servers.", _json("ServerList"))},
            [*AUTH, 422],
            params=[_state(GameServerState), REGION, *LIST],
        ),
    },
    "/v1/servers/{id}": {
        "parameters": [ID],
        "get": _op("One server.", {200: ("The server.", _json("Server"))}, [*AUTH, 404]),
        "delete": _op(
            "Shut a server down (its session ends Evicted).",
            {202: ("Shutting down.", _json("Server"))},
            [*AUTH, 404],
        ),
    },
    "/v1/servers/{id}/power": {
        "parameters": [ID],
        "post": _op(
            "Power action: stop (to Stopped; an Allocated server's session ends Evicted), "
            "start (Stopped to Starting), restart (a new listener and port; an Allocated "
            "server keeps its session; Unhealthy, Error and Stopped servers start again).",
            {202: ("Accepted; the agent converges.", _json("Server"))},
            [*JSON_BODY, 404, 409],
            body=_body("Power", required=True),
        ),
    },
    # Backups of a server's world files (refplat.backups_api)
    "/v1/servers/{id}/backups": {
        "parameters": [ID],
        "post": _op(
            "Snapshot the world files of the server's current session (tenant or admin).",
            {201: ("Created.", _json("Backup"))},
            [*AUTH, 404, 409, 501],
        ),
        "get": _op(
            "The server's backups, oldest first.",
            {200: ("Backups.", _json("BackupList"))},
            [*AUTH, 404, 409, 501],
        ),
    },
    "/v1/servers/{id}/backups/{backup_id}/restore": {
        "parameters": [
            ID,
            _param("backup_id", "path", {"type": "string", "minLength": 1, "maxLength": 64}),
        ],
        "post": _op(
            "Write a backup's files into the server's current Active session, within its "
            "disk quota (all or nothing).",
            {200: ("Restored.", _json("BackupRestored"))},
            [*AUTH, 404, 409, 501, 507],
        ),
    },
    "/v1/sessions": {
        "post": _op(
            "Allocate a Ready server (tenant); Idempotency-Key makes retries safe.",
            {201: ("Allocated.", _json("Session")), 200: ("Seen key.", _json("Session"))},
            [*JSON_BODY, 409],
            body=_body("SessionCreate"),
            params=[IDEMPOTENCY],
        ),
        "get": _op(
            "List sessions (the admin sees all), filtered by state, by pages.",
            {200: ("Sessions.", _json("SessionList"))},
            [*AUTH, 422],
            params=[_state(SessionState), *LIST],
        ),
    },
    "/v1/sessions/{id}": {
        "parameters": [ID],
        "get": _op("One session.", {200: ("The session.", _json("Session"))}, [*AUTH, 404]),
        "delete": _op(
            "End a session (idempotent); its files are deleted.",
            {200: ("Ended.", _json("Session"))},
            [*AUTH, 404],
        ),
    },
    "/v1/sessions/{id}/usage": {
        "parameters": [ID],
        "get": _op(
            "Disk usage of the session's files.", {200: ("Usage.", _json("Usage"))}, [*AUTH, 404]
        ),
    },
    "/v1/sessions/{id}/files/{path}": {
        "parameters": [ID, PATH],
        "put": _op(
            "Write a world file (tenant of an Active session), within the disk quota.",
            {200: ("Written.", _json("FileWritten"))},
            [*AUTH, 403, 404, 409, 411, 413, 422, 501, 507],
            body={"required": True, **BINARY},
        ),
        "get": _op("Read a world file.", {200: ("The bytes.", BINARY)}, [*AUTH, 404, 422, 501]),
        "delete": _op(
            "Delete a world file (tenant of an Active session).",
            {200: ("Deleted.", _json("Usage"))},
            [*AUTH, 403, 404, 409, 422, 501],
        ),
    },
}

DOCUMENT: JsonObject = {
    "openapi": "3.0.3",
    "info": {"title": "refplat", "version": "1", "description": "The reference platform's API."},
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}],
}


def openapi_handler() -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler serving :data:`DOCUMENT` (no token needed)."""
    text = json.dumps(DOCUMENT, sort_keys=True)

    async def handle(_request: web.Request) -> web.Response:
        return web.Response(text=text, content_type="application/json")

    return handle
