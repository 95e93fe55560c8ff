"""`locust -f loadtests/tenant.py --shape ramp --shape-servers N`: a ramp to N allocated game
servers, under real Locust against a real refplat (agent, controller, api on Redis)."""

from __future__ import annotations

import csv
import json
import subprocess
import time
from pathlib import Path

import pytest

from harness.drivers.locust import locust_binary
from harness.util.scratch import stop_process
from tests.conftest import REPO_ROOT
from tests.integration.test_refplat_platform import ADMIN_TOKEN, Launcher, call, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.load]

SERVERS = 4  # the ramp's target
SPARE = 3  # Ready servers beyond it: a ramp that overshoots would take them
RAMP_S = 8  # one more holder every 2 s, so the counts between 0 and SERVERS last a while
# -t ends the run (through the shape: headless Locust 2.47 applies -t only after a shape ended,
# and a SIGTERM before that kills it without its statistics).
RUN_S = RAMP_S + 10
WAIT_S = 60.0


def allocated(api: str, token: str) -> int:
    status, body = call("GET", f"{api}/v1/servers?state=Allocated&limit=500", token=token)
    assert 200 == status, body
    return len(body["items"])


def test_a_servers_ramp_reaches_the_allocated_servers_it_names_and_no_more(
    launcher: Launcher, tmp_path: Path
) -> None:
    launcher.start("agent", "agent", "--node", "node-1")
    launcher.start("ctl", "controller", "--id", "a")
    api = launcher.start_api()
    status, tenant = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "acme"})
    assert 201 == status, tenant
    token = tenant["token"]
    for _ in range(SERVERS + SPARE):
        call("POST", f"{api}/v1/servers", token=token, body={})
    wait_for(
        f"{SERVERS + SPARE} Ready servers",
        lambda: (
            len(call("GET", f"{api}/v1/servers?state=Ready", token=token)[1]["items"])
            == SERVERS + SPARE
        ),
        timeout_s=WAIT_S,
    )
    (tmp_path / "tenant-token").write_text(token)
    target_file = tmp_path / "target.json"
    target_file.write_text(
        json.dumps({"api_url": api, "tenant_token_file": str(tmp_path / "tenant-token")})
    )
    argv = [locust_binary(), "-f", str(REPO_ROOT / "loadtests/tenant.py"), "--headless"]
    argv += ["--harness-target-file", str(target_file), "--only-summary"]
    argv += ["--csv", str(tmp_path / "ramp"), "--shape", "ramp", "--shape-servers", str(SERVERS)]
    argv += ["--shape-ramp-s", str(RAMP_S), "-t", f"{RUN_S}s"]
    seen: list[int] = []
    with open(tmp_path / "locust.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + WAIT_S
            while (not seen or seen[-1] < SERVERS) and time.monotonic() < deadline:
                assert proc.poll() is None, (tmp_path / "locust.log").read_text()[-3000:]
                seen.append(allocated(api, token))
                time.sleep(0.2)
            held = []
            for _ in range(5):  # and it holds them
                time.sleep(0.4)
                held.append(allocated(api, token))
            code = proc.wait(timeout=WAIT_S)  # -t ends the run; the users end their sessions
        finally:
            stop_process(proc)
    output = (tmp_path / "locust.log").read_text()
    print(output[-3000:])  # shown by pytest when the test fails

    assert SERVERS == seen[-1], seen
    assert any(0 < n < SERVERS for n in seen), f"not a ramp but a jump: {seen}"
    assert [SERVERS] * 5 == held
    assert SERVERS == max(seen)
    assert 0 == code, output[-3000:]
    wait_for("the holders to end their sessions", lambda: allocated(api, token) == 0, timeout_s=30)
    with open(tmp_path / "ramp_stats.csv") as stats:
        rows = {row["Name"]: row for row in csv.DictReader(stats)}
    assert SERVERS <= int(rows["POST /v1/sessions (hold)"]["Request Count"])
    assert "0" == rows["Aggregated"]["Failure Count"]
    assert "POST /v1/sessions" not in rows  # the ordinary tenant users did not run
