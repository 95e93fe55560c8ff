"""The reference platform as real processes: 1 api, 2 controllers, 2 agents on one Redis."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from mcstatus import JavaServer
from prometheus_client.parser import text_string_to_metric_families

from harness.util.net import free_port

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "admin-secret-for-tests"
HTTP_TIMEOUT_S = 5.0
# Five Python processes importing aiohttp at once on a loaded 2-core machine take ~20 s.
STARTUP_TIMEOUT_S = 60.0
T = TypeVar("T")


@dataclass
class Platform:
    """Handles on the running processes."""

    api: str
    controllers: dict[str, tuple[subprocess.Popen[bytes], str]] = field(default_factory=dict)
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)


def call(
    method: str, url: str, *, token: str | None = None, body: bytes | dict[str, Any] | None = None
) -> tuple[int, Any]:
    """One HTTP request; return (status, decoded JSON body)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"null")


def is_ok(url: str) -> bool:
    """Whether a GET of ``url`` answers 200."""
    return call("GET", url)[0] == 200


def wait_for(what: str, probe: Callable[[], T | None], *, timeout_s: float) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            result = probe()
        except (OSError, urllib.error.URLError):
            result = None
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout_s:g} s")


def gauge(base_url: str, name: str) -> float:
    """The value of an unlabelled gauge on a /metrics page."""
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=HTTP_TIMEOUT_S) as response:
        text = response.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    raise AssertionError(f"{name} is missing from {base_url}/metrics")


class Launcher:
    """Starts refplat processes with logs in ``logs``; stops every one of them on close."""

    def __init__(self, *, redis_url: str, tmp_path: Path) -> None:
        self.redis_url = redis_url
        self.token_file = tmp_path / "admin-token"
        self.token_file.write_text(ADMIN_TOKEN + "\n")
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        argv = [sys.executable, "-m", "refplat", *args, "--redis-url", self.redis_url]
        argv += ["--listen", f"127.0.0.1:{port}"]
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc, f"http://127.0.0.1:{port}"

    def wait_healthy(self, *urls: str) -> None:
        for url in urls:
            healthz = f"{url}/healthz"
            wait_for(healthz, functools.partial(is_ok, healthz), timeout_s=STARTUP_TIMEOUT_S)

    def start_api(self) -> str:
        args = ["--instance", "api-0", "--admin-token-file", str(self.token_file)]
        url = self.start("api", "api", *args)[1]
        self.wait_healthy(url)
        return url

    def start_with_data_dir(self, data_dir: Path, *api_args: str) -> str:
        """An agent (node-1), a controller and an api sharing ``data_dir``; the api's URL."""
        agent = self.start("agent", "agent", "--node", "node-1")[1]
        ctl = self.start("ctl", "controller", "--id", "a", "--data-dir", str(data_dir))[1]
        args = ["--instance", "api-0", "--admin-token-file", str(self.token_file)]
        api = self.start("api", "api", *args, "--data-dir", str(data_dir), *api_args)[1]
        self.wait_healthy(agent, ctl, api)
        return api

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for path in sorted(self.logs.iterdir()):
            sys.stderr.write(f"--- {path.name}\n{path.read_text()[-3000:]}")


@pytest.fixture
def platform(launcher: Launcher) -> Platform:
    agents = [launcher.start(node, "agent", "--node", node) for node in ("node-1", "node-2")]
    controllers = {name: launcher.start(name, "controller", "--id", name) for name in ("a", "b")}
    plat = Platform(api=launcher.start_api(), controllers=controllers)
    plat.agents = [proc for proc, _ in agents]
    launcher.wait_healthy(*(url for _, url in [*agents, *controllers.values()]))
    return plat


def new_tenant(plat: Platform, name: str) -> str:
    status, body = call("POST", f"{plat.api}/v1/tenants", token=ADMIN_TOKEN, body={"name": name})
    assert 201 == status, body
    return str(body["token"])


def allocated_server(
    api: str, token: str, *, timeout_s: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new server of the tenant, once Ready, and a session allocated on it."""
    server = call("POST", f"{api}/v1/servers", token=token, body={})[1]
    wait_for(
        "a Ready server",
        lambda: call("GET", f"{api}/v1/servers/{server['id']}", token=token)[1]["state"] == "Ready",
        timeout_s=timeout_s,
    )
    session = call("POST", f"{api}/v1/sessions", token=token, body={})[1]
    return server, session


def ready_servers(plat: Platform, token: str, count: int) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        _, body = call("GET", f"{plat.api}/v1/servers?state=Ready", token=token)
        return body["items"] if len(body["items"]) >= count else None

    return wait_for(f"{count} Ready servers", probe, timeout_s=15)


def test_a_session_gets_a_ready_server_that_mcstatus_can_query_and_ending_it_frees_it(
    platform: Platform,
) -> None:
    token = new_tenant(platform, "acme")
    for _ in range(3):
        assert 201 == call("POST", f"{platform.api}/v1/servers", token=token, body={})[0]
    servers = ready_servers(platform, token, 3)
    assert {"node-1", "node-2"} == {s["node"] for s in servers}

    status, session = call("POST", f"{platform.api}/v1/sessions", token=token, body={})
    assert (201, "Active") == (status, session["state"])
    game = JavaServer(session["address"], session["port"], timeout=2)

    def allocated_status() -> Any:  # the agent learns of the allocation on its next poll
        reply = game.status(tries=1)
        return reply if reply.players.online == 1 else None

    assert "1.21" == wait_for("players.online = 1", allocated_status, timeout_s=5).version.name

    status, ended = call("DELETE", f"{platform.api}/v1/sessions/{session['id']}", token=token)
    assert (200, "Ended", "Completed") == (status, ended["state"], ended["reason"])
    _, server = call("GET", f"{platform.api}/v1/servers/{session['server_id']}", token=token)
    assert ("Ready", None) == (server["state"], server["session"])
    assert 200 == call("DELETE", f"{platform.api}/v1/sessions/{session['id']}", token=token)[0]


def test_a_deleted_server_loses_its_listener_and_then_its_record(platform: Platform) -> None:
    token = new_tenant(platform, "acme")
    call("POST", f"{platform.api}/v1/servers", token=token, body={})
    (server,) = ready_servers(platform, token, 1)
    url = f"{platform.api}/v1/servers/{server['id']}"

    status, body = call("DELETE", url, token=token)

    assert (202, "Shutdown") == (status, body["state"])
    wait_for("the record to go", lambda: call("GET", url, token=token)[0] == 404, timeout_s=5)
    with pytest.raises(OSError):
        JavaServer(server["address"], server["port"], timeout=1).status(tries=1)


def test_sessions_never_share_a_server_and_run_out_with_409(platform: Platform) -> None:
    token = new_tenant(platform, "acme")
    for _ in range(2):
        call("POST", f"{platform.api}/v1/servers", token=token, body={})
    ready_servers(platform, token, 2)

    first = call("POST", f"{platform.api}/v1/sessions", token=token, body={})[1]
    second = call("POST", f"{platform.api}/v1/sessions", token=token, body={})[1]
    third = call("POST", f"{platform.api}/v1/sessions", token=token, body={})

    assert first["server_id"] != second["server_id"]
    assert 409 == third[0]


def status_of(url: str) -> dict[str, Any]:
    status, body = call("GET", f"{url}/status")
    assert 200 == status
    return dict(body)


def leader_of(plat: Platform, *, skip: str = "") -> str | None:
    """The name of the controller that says it leads (ignoring ``skip``), if any."""
    for name, (_, url) in plat.controllers.items():
        if name != skip and status_of(url)["leader"]:
            return name
    return None


def test_killing_the_leader_controller_hands_the_lease_to_the_standby(platform: Platform) -> None:
    old = wait_for("a leader", lambda: leader_of(platform), timeout_s=10)
    old_proc, _ = platform.controllers[old]
    (standby, (_, standby_url)) = next(i for i in platform.controllers.items() if i[0] != old)
    old_proc.kill()
    killed_at = time.time()
    old_proc.wait(timeout=5)

    first = wait_for(
        "the standby's first reconcile",
        lambda: gauge(standby_url, "refplat_controller_leader_first_reconcile_timestamp_seconds"),
        timeout_s=10,
    )

    status = call("GET", f"{standby_url}/status")[1]
    assert (standby, True, os.getpid() != status["pid"]) == (status["id"], status["leader"], True)
    assert 2 == status["epoch"]
    assert killed_at < first < killed_at + 10


def test_a_frozen_leader_resumed_after_a_takeover_steps_down(platform: Platform) -> None:
    old = wait_for("a leader", lambda: leader_of(platform), timeout_s=10)
    old_proc, old_url = platform.controllers[old]
    old_proc.send_signal(signal.SIGSTOP)
    try:
        new = wait_for("a new leader", lambda: leader_of(platform, skip=old), timeout_s=10)
    finally:
        old_proc.send_signal(signal.SIGCONT)

    wait_for("the old leader to step down", lambda: not status_of(old_url)["leader"], timeout_s=5)
    new_status = status_of(platform.controllers[new][1])
    assert (True, 2) == (new_status["leader"], new_status["epoch"])
    assert 0 == gauge(old_url, "refplat_controller_is_leader")


def test_a_tenant_cannot_see_another_tenants_server(platform: Platform) -> None:
    owner, other = new_tenant(platform, "owner"), new_tenant(platform, "other")
    _, server = call("POST", f"{platform.api}/v1/servers", token=owner, body={})

    assert 404 == call("GET", f"{platform.api}/v1/servers/{server['id']}", token=other)[0]
    assert 404 == call("DELETE", f"{platform.api}/v1/servers/{server['id']}", token=other)[0]
    assert [] == call("GET", f"{platform.api}/v1/servers", token=other)[1]["items"]
    assert 200 == call("GET", f"{platform.api}/v1/servers/{server['id']}", token=owner)[0]


BAD_REQUESTS: list[tuple[str, str, str, str | None, Any, int]] = [
    ("bad-json", "POST", "/v1/tenants", ADMIN_TOKEN, b"{not json", 422),
    ("json-array", "POST", "/v1/tenants", ADMIN_TOKEN, b"[1]", 422),
    ("bad-field", "POST", "/v1/tenants", ADMIN_TOKEN, {"name": 3}, 422),
    ("unknown-field", "POST", "/v1/tenants", ADMIN_TOKEN, {"name": "x", "y": 1}, 422),
    ("no-token", "POST", "/v1/tenants", None, {"name": "x"}, 401),
    ("bad-token", "POST", "/v1/tenants", "wrong", {"name": "x"}, 401),
    ("no-token-get", "GET", "/v1/servers", None, None, 401),
    ("too-big", "POST", "/v1/tenants", ADMIN_TOKEN, b" " * (1024 * 1024 + 1), 413),
    ("unknown-route", "GET", "/v1/nothing-here", ADMIN_TOKEN, None, 404),
    ("bad-method", "PUT", "/v1/servers", ADMIN_TOKEN, None, 405),
    ("bad-state", "GET", "/v1/servers?state=Bogus", ADMIN_TOKEN, None, 422),
    ("admin-allocates", "POST", "/v1/sessions", ADMIN_TOKEN, {}, 403),
    ("missing-session", "GET", "/v1/sessions/s-nope", ADMIN_TOKEN, None, 404),
]


def test_bad_requests_get_json_client_errors_never_a_500(launcher: Launcher) -> None:
    api = launcher.start_api()
    expected = {case: (code, True) for case, *_, code in BAD_REQUESTS}

    actual = {}
    for case, method, path, token, body, _ in BAD_REQUESTS:
        status, payload = call(method, f"{api}{path}", token=token, body=body)
        actual[case] = (status, isinstance(payload, dict) and "error" in payload)

    assert expected == actual


def test_api_metrics_count_requests_by_route_template(launcher: Launcher) -> None:
    api = launcher.start_api()
    call("GET", f"{api}/v1/sessions/s-1", token=ADMIN_TOKEN)
    call("GET", f"{api}/v1/sessions/s-2", token=ADMIN_TOKEN)

    with urllib.request.urlopen(f"{api}/metrics", timeout=HTTP_TIMEOUT_S) as response:
        text = response.read().decode()

    line = 'refplat_api_requests_total{code="404",method="GET",route="/v1/sessions/{id}"} 2.0'
    assert line in text.splitlines()
    assert 1.0 == gauge(api, "refplat_api_up")


def test_every_process_exits_cleanly_on_sigterm(launcher: Launcher, platform: Platform) -> None:
    for proc in launcher.procs:
        proc.terminate()

    # Bounded, not timed: a process that ignored SIGTERM would hang here (they take ~0.5 s).
    codes = [proc.wait(timeout=15) for proc in launcher.procs]

    assert [0] * 5 == codes


def test_an_empty_admin_token_file_is_a_startup_error(launcher: Launcher) -> None:
    launcher.token_file.write_text("  \n")
    proc, _ = launcher.start(
        "api", "api", "--instance", "x", "--admin-token-file", str(launcher.token_file)
    )

    assert 2 == proc.wait(timeout=10)
