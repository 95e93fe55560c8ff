"""Tenant isolation on every endpoint: another tenant's ids are 404 and change nothing.

The operations come from the published OpenAPI document, so a route added later is covered
without editing this test (and one that cannot be filled in here fails it).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from refplat.openapi import DOCUMENT
from tests.integration.test_refplat_platform import (
    ADMIN_TOKEN,
    Launcher,
    allocated_server,
    call,
)

pytestmark = pytest.mark.integration

WORLD_FILE = "world/level.dat"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch"})
# A body the operation would accept from its owner, so only the ownership check can refuse it.
BODIES: dict[tuple[str, str], bytes | dict[str, Any]] = {
    ("put", "/v1/sessions/{id}/files/{path}"): b"overwritten by another tenant",
    ("post", "/v1/servers/{id}/power"): {"signal": "stop"},
    ("post", "/v1/servers/{id}/backups"): {},
    ("post", "/v1/servers/{id}/backups/{backup_id}/restore"): {},
}


def _owned_operations() -> list[tuple[str, str]]:
    """Every (method, path template) of the document that names an object by id."""
    return [
        (method, path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in HTTP_METHODS and "{id}" in path
    ]


def test_another_tenant_gets_404_on_every_operation_on_ids_it_does_not_own(
    launcher: Launcher, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    api = launcher.start_with_data_dir(data_dir)
    owner = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "owner"})[1]
    other = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "other"})[1]
    mine, theirs = str(owner["token"]), str(other["token"])
    server, session = allocated_server(api, mine, timeout_s=30)
    files = f"{api}/v1/sessions/{session['id']}/files"
    assert 200 == call("PUT", f"{files}/{WORLD_FILE}", token=mine, body=b"owner's world")[0]
    status, backup = call("POST", f"{api}/v1/servers/{server['id']}/backups", token=mine, body={})
    assert status in (200, 201, 202), backup
    ids = {
        "/v1/servers/{id}": f"/v1/servers/{server['id']}",
        "/v1/sessions/{id}": f"/v1/sessions/{session['id']}",
        "{path}": WORLD_FILE,
        "{backup_id}": str(backup["id"]),
    }
    before = {
        "server": call("GET", f"{api}/v1/servers/{server['id']}", token=mine)[1],
        "session": call("GET", f"{api}/v1/sessions/{session['id']}", token=mine)[1],
    }

    answers: dict[str, tuple[int, str]] = {}
    for method, template in _owned_operations():
        path = template
        for placeholder, value in ids.items():
            path = path.replace(placeholder, value)
        assert not re.search(r"\{\w+\}", path), f"no id to fill {template} with in this test"
        body = BODIES.get((method, template))
        answers[f"{method.upper()} {template}"] = raw_call(method, f"{api}{path}", theirs, body)

    assert dict.fromkeys(answers, 404) == {op: status for op, (status, _) in answers.items()}
    for op, (_, reply) in answers.items():
        assert session["id"] not in reply and "owner's world" not in reply, op
    assert [] == call("GET", f"{api}/v1/servers", token=theirs)[1]["items"]
    assert [] == call("GET", f"{api}/v1/sessions", token=theirs)[1]["items"]
    after = {
        "server": call("GET", f"{api}/v1/servers/{server['id']}", token=mine)[1],
        "session": call("GET", f"{api}/v1/sessions/{session['id']}", token=mine)[1],
    }
    assert before == after
    assert "Allocated" == after["server"]["state"]
    content = call_bytes(f"{files}/{WORLD_FILE}", mine)
    assert b"owner's world" == content


def raw_call(
    method: str, url: str, token: str, body: bytes | dict[str, Any] | None
) -> tuple[int, str]:
    """One request; the status and the body as text, whatever its type."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method.upper())
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode(errors="replace")


def call_bytes(url: str, token: str) -> bytes:
    """GET raw bytes (world files are not JSON)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return bytes(response.read())
