"""schemathesis against a real api (with a controller, an agent and Redis): no 5xx, ever."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from tests.integration.test_refplat_platform import ADMIN_TOKEN, Launcher, call, wait_for

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 30
SESSION_SCOPED = "/v1/sessions/{id}/"


def start_platform(launcher: Launcher, data_dir: Path) -> str:
    agent = launcher.start("agent", "agent", "--node", "node-1")[1]
    ctl = launcher.start("ctl", "controller", "--id", "a", "--data-dir", str(data_dir))[1]
    args = ["--instance", "api-0", "--admin-token-file", str(launcher.token_file)]
    args += ["--data-dir", str(data_dir), "--session-disk-quota-bytes", str(64 * 1024)]
    args += ["--rate-limit-per-token", "0", "--rate-limit-per-session", "0"]
    api = launcher.start("api", "api", *args)[1]
    launcher.wait_healthy(agent, ctl, api)
    return api


def active_session(api: str, token: str) -> str:
    for _ in range(3):
        call("POST", f"{api}/v1/servers", token=token, body={})

    def ready() -> bool:
        servers = call("GET", f"{api}/v1/servers?state=Ready", token=token)[1]["items"]
        return len(servers) == 3

    wait_for("3 Ready servers", ready, timeout_s=15)
    status, session = call("POST", f"{api}/v1/sessions", token=token, body={})
    assert 201 == status, session
    return str(session["id"])


def fuzz(
    schema: Any,
    *,
    api: str,
    token: str,
    session_id: str,
    examples: int,
    mode: GenerationMode = GenerationMode.POSITIVE,
) -> list[str]:
    """Run every operation ``examples`` times; return a line per server error."""
    failures: list[str] = []
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {token}"
        for result in schema.get_all_operations():
            fuzz_operation(
                result.ok(),
                api=api,
                http=http,
                session_id=session_id,
                examples=examples,
                mode=mode,
                failures=failures,
            )
    return failures


def fuzz_operation(
    operation: Any,
    *,
    api: str,
    http: requests.Session,
    session_id: str,
    examples: int,
    mode: GenerationMode,
    failures: list[str],
) -> None:
    scoped = operation.path.startswith(SESSION_SCOPED)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if scoped:  # a real Active session, not a random id
            case.path_parameters["id"] = session_id
        try:
            case.call_and_validate(base_url=api, session=http, checks=[not_a_server_error])
        except Exception as exc:
            failures.append(f"{case.method} {case.formatted_path}: {exc}")

    try:
        run()
    except Unsatisfiable:  # nothing to get wrong (no parameters, no body) in negative mode
        assert GenerationMode.NEGATIVE == mode


def test_no_generated_request_gets_a_server_error_as_tenant_or_admin(
    launcher: Launcher, tmp_path: Path
) -> None:
    api = start_platform(launcher, tmp_path / "data")
    token = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "fuzz"})[1]["token"]
    session_id = active_session(api, token)
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    started = time.monotonic()

    failures = fuzz(
        schema, api=api, token=token, session_id=session_id, examples=EXAMPLES_PER_OPERATION
    )
    failures += fuzz(schema, api=api, token=ADMIN_TOKEN, session_id=session_id, examples=10)
    negative = GenerationMode.NEGATIVE
    failures += fuzz(
        schema, api=api, token=token, session_id=session_id, examples=20, mode=negative
    )

    print(f"schemathesis: {time.monotonic() - started:.1f} s")
    assert [] == failures
