"""The single-host faults of the catalogue, end to end, each shown to be real.

One ``harness certify --profile local-catalogue`` run covers the node agent kill, the CPU hog,
the rate-limit storm, the rolling restart with a failed build rolled back (and the node
partition, SKIPPED on loopback). The disk quota fill runs with the plain upstream ``chaos run``
against a small platform whose api has a small quota (every byte of it is really written).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.drivers.platform_api import PlatformApi
from harness.drivers.process import stop_ledger
from harness.model import Endpoints, ProcessInfo
from harness.util.http import request
from tests.conftest import REPO_ROOT
from tests.integration.conftest import only_run, run_harness
from tests.integration.test_refplat_platform import Launcher, wait_for

pytestmark = pytest.mark.integration

QUOTA_BYTES = 3 * 1024 * 1024 + 512 * 1024  # three 1 MiB filler files and half of a fourth


def journal(run_dir: Path, stem: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "chaos" / f"{stem}.journal.json").read_text())
    return data


def output(data: dict[str, Any], activity: str) -> Any:
    return next(r["output"] for r in data["run"] if r["activity"]["name"] == activity)


def test_the_catalogue_profile_passes_and_each_fault_is_real(tmp_path: Path) -> None:
    try:
        result = run_harness(
            "certify", "--profile", "local-catalogue", "--reports-dir", str(tmp_path)
        )
        run_dir, data = only_run(tmp_path)
        # The engine adopted the replicas the rolling restart started and stopped them.
        assert [] == stop_ledger(run_dir / "ledger-chaos.json")
    finally:
        for ledger in tmp_path.glob("*/ledger-chaos.json"):
            stop_ledger(ledger)
    assert 0 == result.returncode, result.stdout + result.stderr[-4000:]
    verdicts = {f["name"]: f["status"] for f in data["faults"]}
    assert {
        "node-agent-kill": "PASS",
        "cpu-hog": "PASS",
        "rate-limit-storm": "PASS",
        "disk-quota-fill": "PASS",
        "node-partition": "SKIPPED",
        "rolling-restart": "PASS",
        "bad-build-rollback": "PASS",
    } == verdicts
    assert {"PASS"} == {s["verdict"] for s in data["slos"] if s["severity"] == "gate"}

    killed = output(journal(run_dir, "node-agent-kill"), "kill-node-agent")
    assert killed["gone"]  # the agent's pid vanished before the action returned
    recovered = [
        json.loads(line)
        for line in (run_dir / "timeline.jsonl").read_text().splitlines()
        if '"recovered"' in line and '"node-agent-kill"' in line
    ]
    assert [killed["killed"]] == [e["target"] for e in recovered]

    hog = output(journal(run_dir, "cpu-hog"), "hog-one-cpu")
    assert hog["cpu_s"] > 0.5  # CPU really burned (a loaded machine gives the hog less than 5 s)

    storm = json.loads((run_dir / "chaos-results" / "rate-limit-storm.json").read_text())
    assert storm["statuses"]["429"] > 0
    assert 0 == storm["throttled_without_retry_after"]
    assert {"200"} == set(storm["bystander_statuses"])

    fill = output(journal(run_dir, "disk-quota-fill"), "fill-a-session-quota")
    assert 4 * 1024 * 1024 == fill["used_bytes"] == fill["quota_bytes"]  # the profile's quota
    assert "507" in fill["statuses"]

    deploy = journal(run_dir, "rolling-restart")
    restarted = output(deploy, "restart-api-replicas-one-by-one")["restarted"]
    assert ["api-1", "api-2"] == [r["name"] for r in restarted]
    assert all(r["new_pid"] != r["old_pid"] for r in restarted)
    rollback = output(deploy, "deploy-a-build-that-fails-readiness")
    assert rollback["failed_readiness"]
    assert rollback["restored_pid"] != rollback["bad_build_pid"]
    during = data["load"]["phases"]["fault:rolling-restart"]
    assert during["requests"] > 0
    assert 0 == during["failures"]


def test_a_tenant_filling_its_disk_quota_is_refused_with_507_and_counted(
    launcher: Launcher, redis_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    api_url = launcher.start_with_data_dir(data_dir, "--session-disk-quota-bytes", str(QUOTA_BYTES))
    target_file = seeded_target(launcher, tmp_path, api_url=api_url, redis_url=redis_url)
    env = {**os.environ, "HARNESS_TARGET_FILE": str(target_file)}
    chaos = subprocess.run(
        [str(Path(sys.executable).parent / "chaos"), "run", "--journal-path",
         str(tmp_path / "journal.json"), str(REPO_ROOT / "experiments" / "disk-quota-fill.yaml")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert 0 == chaos.returncode, chaos.stdout + chaos.stderr[-3000:]
    data = json.loads((tmp_path / "journal.json").read_text())
    assert "completed" == data["status"]
    assert not data["deviated"]
    fill = output(data, "fill-a-session-quota")
    assert QUOTA_BYTES == fill["used_bytes"] == fill["quota_bytes"]
    assert {"201": 4, "507": 2} == fill["statuses"] or {"200": 4, "507": 2} == fill["statuses"]
    assert fill["counted_rejections"] >= 2
    removed = next(r for r in data["rollbacks"] if r["activity"]["name"] == "remove-filler-files")
    assert 4 == removed["output"]["removed"]
    assert not [p for p in data_dir.rglob("*.bin") if p.is_file()]  # the filler files are gone


def seeded_target(launcher: Launcher, tmp_path: Path, *, api_url: str, redis_url: str) -> Path:
    """A target file for the launcher's platform, with a seeded tenant (the other tenant)."""
    admin = PlatformApi(api_url, token=launcher.token_file.read_text().strip())
    tenant = admin.create_tenant("harness")
    token_file = tmp_path / "tenant-token"
    token_file.write_text(tenant["token"])
    api = admin.as_token(tenant["token"])
    api.create_server(region="local")
    api.wait_servers_ready(1, timeout_s=30)
    endpoints = Endpoints(
        run_id="disk-fill",
        target="local",
        run_dir=str(tmp_path),
        api_url=api_url,
        admin_token_file=str(launcher.token_file),
        redis_url=redis_url,
        prometheus_url="",
        timeline_file=str(tmp_path / "timeline.jsonl"),
        processes=(ProcessInfo("api-0", "api", launcher.procs[-1].pid, api_url),),
        tenant_token_file=str(token_file),
    )
    target_file = tmp_path / "target.json"
    endpoints.write(target_file)
    return target_file


def test_a_draining_replica_fails_readiness_and_a_bad_build_is_never_ready(
    launcher: Launcher,
) -> None:
    args = ["--instance", "api-0", "--admin-token-file", str(launcher.token_file)]
    draining, url = launcher.start("api", "api", *args, "--drain-s", "2")
    _, bad_url = launcher.start("bad", "api", *args, "--fail-readiness")
    launcher.wait_healthy(url, bad_url)
    bad = request("GET", f"{bad_url}/readyz", timeout_s=2)
    assert (503, "--fail-readiness") == (bad.status, bad.json()["error"])
    assert 200 == request("GET", f"{url}/readyz", timeout_s=2).status
    draining.send_signal(signal.SIGTERM)
    wait_for(
        "readiness to fail",
        lambda: request("GET", f"{url}/readyz", timeout_s=2).status == 503 or None,
        timeout_s=5,
    )
    assert 200 == request("GET", f"{url}/healthz", timeout_s=2).status  # still serving
    assert 0 == draining.wait(timeout=10)
