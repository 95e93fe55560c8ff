"""loadtests/players.py under real `locust --headless` against real game-server listeners."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from harness.drivers.locust import locust_binary
from harness.util.net import free_port
from refplat.slp import start_listener
from tests.conftest import REPO_ROOT
from tests.integration.test_refplat_platform import (
    ADMIN_TOKEN,
    Launcher,
    allocated_server,
    call,
    wait_for,
)
from tests.unit.test_slp_client import STATUS, LoopThread, misbehaving, slp

pytestmark = [pytest.mark.integration, pytest.mark.load]

LOCUST_TIMEOUT_S = 60


def run_players(tmp_path: Path, *args: str) -> tuple[int, dict[str, int], dict[str, int]]:
    """Run the players locustfile headless; (exit code, requests by name, failures by error).

    Locust's output is kept in ``locust.log`` (and shown when a test fails)."""
    prefix = tmp_path / "players"
    argv = [locust_binary(), "-f", str(REPO_ROOT / "loadtests/players.py"), "--headless"]
    argv += ["--only-summary", "--csv", str(prefix), "--slp-wait-s", "0.05", *args]
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=LOCUST_TIMEOUT_S, cwd=tmp_path
    )
    (tmp_path / "locust.log").write_text(out.stderr)
    print(out.stderr[-3000:])  # shown by pytest when the test fails
    assert out.returncode in (0, 1), out.stderr[-3000:]
    with open(f"{prefix}_stats.csv") as stats:
        requests = {
            f"{row['Type']} {row['Name']}": int(row["Request Count"])
            for row in csv.DictReader(stats)
            if row["Name"] != "Aggregated"
        }
    with open(f"{prefix}_failures.csv") as failures:
        errors: dict[str, int] = {}
        for row in csv.DictReader(failures):
            errors[row["Error"]] = errors.get(row["Error"], 0) + int(row["Occurrences"])
    return out.returncode, requests, errors


def test_players_count_queries_and_name_failures_by_kind(tmp_path: Path) -> None:
    loop = LoopThread()
    try:
        live = [
            loop.serve(lambda: start_listener(host="127.0.0.1", port=0, status=lambda: STATUS))
            for _ in range(2)
        ]
        silent = misbehaving(loop, lambda _request: None)
        targets = [*live, free_port(), silent]
        code, requests, errors = run_players(
            tmp_path,
            "--slp-targets", ",".join(f"127.0.0.1:{port}" for port in targets),
            "--slp-timeout-s", "0.3",
            "--shape", "steady", "--shape-users", "8", "--shape-duration-s", "4",
        )  # fmt: skip
    finally:
        loop.close()

    assert 1 == code  # failures make Locust exit 1
    assert {"SLP ping", "SLP status"} == set(requests)
    kinds = {error.split("(")[0].rpartition(" ")[2] for error in errors}
    assert {"SlpConnectError", "SlpTimeout"} == kinds, errors
    assert all("connect: " in e or "timeout: " in e for e in errors)
    # Half the targets answer, so most queries succeed even though the dead ones fail.
    assert sum(requests.values()) > sum(errors.values()) > 0


def test_players_query_only_the_allocated_servers_the_api_lists(
    launcher: Launcher, tmp_path: Path
) -> None:
    launcher.start("agent", "agent", "--node", "node-1")
    launcher.start("ctl", "controller", "--id", "a")
    api = launcher.start_api()
    status, tenant = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "acme"})
    assert 201 == status, tenant
    token = tenant["token"]
    _, session = allocated_server(api, token, timeout_s=30)
    # A Ready server whose status reply is longer (its version name is): if players queried
    # it, the mean status reply size would not be the allocated server's.
    ready = call("POST", f"{api}/v1/servers", token=token, body={"version": "1.20.4"})[1]
    wait_for(
        "the second server Ready",
        lambda: call("GET", f"{api}/v1/servers/{ready['id']}", token=token)[1]["state"] == "Ready",
        timeout_s=30,
    )
    allocated = slp.resolve(session["address"], session["port"])
    (tmp_path / "tenant-token").write_text(token)
    target_file = tmp_path / "target.json"
    target_file.write_text(
        json.dumps({"api_url": api, "tenant_token_file": str(tmp_path / "tenant-token")})
    )

    code, requests, errors = run_players(
        tmp_path,
        "--harness-target-file", str(target_file),
        "-u", "4", "-r", "4", "-t", "3s",
    )  # fmt: skip

    assert (0, {}) == (code, errors)
    assert requests["SLP ping"] > 0 and requests["SLP status"] > 0
    sizes = _content_sizes(tmp_path)
    assert (10.0, 1.0 * slp.status(allocated, timeout_s=2).bytes_read) == (
        sizes["SLP ping"],
        sizes["SLP status"],
    )


def _content_sizes(tmp_path: Path) -> dict[str, float]:
    with open(tmp_path / "players_stats.csv") as stats:
        return {
            f"{row['Type']} {row['Name']}": float(row["Average Content Size"])
            for row in csv.DictReader(stats)
        }
