"""The OpenAPI document against the routes the aiohttp app registers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from refplat.api import Api, ApiSettings
from refplat.openapi import DOCUMENT
from refplat.runtime import HostPort
from refplat.store import Store, connect

METHODS = {"get", "put", "post", "delete", "patch"}


def registered_routes() -> set[tuple[str, str]]:
    """(method, path template) of every route of the app; HEAD is aiohttp's own, for GETs."""
    settings = ApiSettings(
        instance="t", listen=HostPort("127.0.0.1", 0), admin_token_file=Path("unused")
    )
    api = Api(store=Store(connect("redis://127.0.0.1:1/0")), settings=settings, admin_token="x")
    app = api.web_app()
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }


def documented_routes() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in METHODS
    }


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in DOCUMENT["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


def test_every_registered_route_is_documented_and_every_documented_route_registered() -> None:
    registered = registered_routes()

    assert (set(), set()) == (registered - documented_routes(), documented_routes() - registered)
    assert len(registered) >= 17


def test_every_authenticated_operation_documents_401_and_429_with_the_error_schema() -> None:
    error = {"$ref": "#/components/schemas/Error"}
    missing = [
        f"{method.upper()} {path} {code}"
        for method, path, op in operations()
        if op.get("security") != []
        for code in ("401", "429")
        if op["responses"]
        .get(code, {})
        .get("content", {})
        .get("application/json", {})
        .get("schema")
        != error
    ]

    assert [] == missing


def test_the_document_is_openapi_3_0_with_bearer_security_and_resolvable_references() -> None:
    text = json.dumps(DOCUMENT)
    refs = {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}

    assert DOCUMENT["openapi"].startswith("3.0.")
    assert {"type": "http", "scheme": "bearer"} == DOCUMENT["components"]["securitySchemes"][
        "bearer"
    ]
    assert set() == refs - set(DOCUMENT["components"]["schemas"])


def test_schemathesis_loads_every_operation_of_the_document() -> None:
    import schemathesis

    schema = schemathesis.openapi.from_dict(DOCUMENT)
    loaded = [result.ok() for result in schema.get_all_operations()]

    assert len(operations()) == len(loaded)
