"""The smoke certification end to end on the local target, through the real `harness` command.

Each run starts real Redis, refplat, HAProxy, Prometheus, the blackbox exporter, Locust and
Chaos Toolkit on loopback. Runs are shared per module because each takes about a minute.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import only_run, run_harness

pytestmark = pytest.mark.integration


def run_json(reports: Path) -> dict[str, Any]:
    return only_run(reports)[1]


def _listening_ports() -> set[int]:
    out = subprocess.run(["ss", "-Htln"], capture_output=True, text=True, timeout=10).stdout
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in out.splitlines() if line.split()}


@pytest.fixture(scope="module")
def passing_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path, set[int]]:
    reports = tmp_path_factory.mktemp("reports")
    result = run_harness(
        "certify",
        "--target",
        "local",
        "--profile",
        "smoke",
        "--reports-dir",
        str(reports),
    )
    return result, reports, _listening_ports()


def test_smoke_certification_passes_with_every_slo_pass(passing_run: Any) -> None:
    result, reports, _ = passing_run
    assert 0 == result.returncode, result.stdout + result.stderr[-4000:]
    data = run_json(reports)
    assert "PASS" == data["verdict"]
    names = {s["name"]: s["verdict"] for s in data["slos"]}
    assert {
        "api-availability",
        "controller-failover",
        "api-latency-p99",
        "sessions-preserved",
    } <= set(names)
    assert {"PASS"} == set(names.values())


def test_the_fault_is_on_the_timeline_with_its_recovery(passing_run: Any) -> None:
    _, reports, _ = passing_run
    (fault,) = run_json(reports)["faults"]
    assert "controller-leader-kill" == fault["name"]
    assert fault["injected_at"] and fault["recovered_at"]
    assert 0 < fault["recovery_s"] <= 30


def test_the_run_leaves_its_reports_and_load_statistics(passing_run: Any) -> None:
    result, reports, _ = passing_run
    data = run_json(reports)
    run_dir = reports / data["run_id"]
    assert data["load"]["requests"] > 0
    assert (run_dir / "junit.xml").is_file()
    assert (run_dir / data["artifacts"]["journal:controller-leader-kill"]).is_file()
    assert "VERDICT: PASS" in result.stdout


def test_the_run_leaves_no_process_or_listening_port_behind(passing_run: Any) -> None:
    _, reports, listening = passing_run
    run_dir = reports / run_json(reports)["run_id"]
    target = json.loads((run_dir / "target.json").read_text())
    urls = [target["api_url"], target["prometheus_url"], target["redis_url"]]
    urls += [p["url"] for p in target["processes"] if p["url"]]
    used = {int(url.rsplit(":", 1)[1].split("/")[0]) for url in urls}
    ledger = json.loads((run_dir / "ledger.json").read_text())
    assert [] == ledger["processes"]
    leftovers = subprocess.run(
        ["pgrep", "-f", str(run_dir)], capture_output=True, text=True, timeout=10
    )
    assert "" == leftovers.stdout
    assert set() == used & listening


def test_no_takeover_fails_the_gate_and_sparse_probes_cannot_decide(tmp_path: Path) -> None:
    result = run_harness(
        "certify",
        "--target",
        "local",
        "--profile",
        "smoke",
        "--set",
        "topology.controller_replicas=1",
        # One probe a second: ~35 probes cannot resolve the 35 ms budget of 99.9 % over the run.
        "--set",
        "probes.api_per_second=1",
        "--reports-dir",
        str(tmp_path),
    )
    assert 1 == result.returncode, result.stdout + result.stderr[-4000:]
    data = run_json(tmp_path)
    assert "FAIL" == data["verdict"]
    failover = next(s for s in data["slos"] if s["name"] == "controller-failover")
    assert "FAIL" == failover["verdict"]
    availability = next(s for s in data["slos"] if s["name"] == "api-availability")
    assert "INCONCLUSIVE" == availability["verdict"], availability
    assert "cannot resolve" in availability["detail"]
    assert "probes" in availability["detail"]
