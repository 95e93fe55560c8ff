"""HTTP edges of the api: JSON errors, request metrics, callers, and request-body validation."""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from refplat.metrics import ApiMetrics
from refplat.redisconn import UNAVAILABLE_ERRORS, unavailable_message
from refplat.store import Store

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """A client-visible error: an HTTP status and a JSON body ``{"error": ..., ...}``."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}
        self.body = {"error": message, **extra}


def error(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> ApiError:
    """Build an :class:`ApiError` (to ``raise``), with extra response ``headers``."""
    return ApiError(status, message, headers, **extra)


def metrics_middleware(metrics: ApiMetrics) -> Any:
    """Count and time every request by method, route template and code."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        finally:
            metrics.duration.labels(route=route).observe(time.perf_counter() - started)
            metrics.requests.labels(method=request.method, route=route, code=str(code)).inc()

    return middleware


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error, a client's or ours, is a JSON body; nothing escapes as an HTML page."""
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body, status=exc.status, headers=exc.headers)
    except web.HTTPException as exc:
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response({"error": exc.reason}, status=exc.status, headers=allow)
    except UNAVAILABLE_ERRORS as exc:  # Redis down, failing over, or a write not durable
        log.warning("%s %s answered 503: %s", request.method, request.path, exc)
        body = {"error": unavailable_message(exc)}
        return web.json_response(body, status=503, headers={"Retry-After": "1"})
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return web.json_response({"error": "internal error; see the api log"}, status=500)


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the admin, or one tenant."""

    tenant: str | None

    @property
    def admin(self) -> bool:
        """Whether this is the platform administrator."""
        return self.tenant is None


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def caller_of(request: web.Request, *, store: Store, admin_token: str) -> Caller:
    """Authenticate the bearer token; raise 401 when missing or unknown."""
    token = bearer_token(request)
    if token is None:
        raise error(401, "missing bearer token; send 'Authorization: Bearer <token>'")
    if hmac.compare_digest(token.encode(), admin_token.encode()):
        return Caller(tenant=None)
    tenant = await store.tenant_for_token(token)
    if tenant is None:
        raise error(401, "invalid token")
    return Caller(tenant=tenant)


async def json_body(request: web.Request, *, allowed: frozenset[str]) -> dict[str, Any]:
    """The request body as a JSON object (empty body = ``{}``); 413, 422 on bad input."""
    raw = await request.read()  # raises 413 beyond client_max_size
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(422, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise error(422, "request body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise error(422, "unknown fields", fields=dict.fromkeys(unknown, "unknown field"))
    return body


def name_field(body: dict[str, Any], field: str, *, default: str | None) -> str | None:
    """A short identifier-like string field; 422 naming the field when invalid."""
    value = body.get(field, default)
    if value is None:
        if default is None and field in body:
            raise error(422, "invalid fields", fields={field: "must be a string"})
        return None
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        message = "must be 1-64 characters of letters, digits, '.', '_' or '-'"
        raise error(422, "invalid fields", fields={field: message})
    return value


def text_field(body: dict[str, Any], field: str, *, max_len: int = 128) -> str:
    """A required non-empty string field; 422 naming the field when invalid."""
    value = body.get(field)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        message = f"required, a non-empty string of at most {max_len} characters"
        raise error(422, "invalid fields", fields={field: message})
    return value.strip()
