"""The recording rules and alerts of Kubernetes' own SLIs pass promtool, record the SLIs the
SLO file judges, and alert at the SLO file's objectives."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from harness.slo import load_slo_file
from tests.conftest import REPO_ROOT

RULES = REPO_ROOT / "platform/manifests/base/rules/kube-control-plane.rules.yaml"
SLOS = REPO_ROOT / "slos/kube-control-plane.yaml"


def test_promtool_accepts_the_kube_control_plane_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed; apt-get install prometheus (scripts/setup.sh).")
    out = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert 0 == out.returncode, out.stdout + out.stderr


def test_the_rules_record_both_slis_from_the_apiserver_and_scheduler_histograms() -> None:
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    records = {r["record"]: r["expr"] for r in rules if "record" in r}
    mutating = records["kube:apiserver_mutating_request_duration_seconds:p99_rate5m"]
    assert "apiserver_request_duration_seconds_bucket" in mutating
    assert 'verb=~"POST|PUT|PATCH|DELETE"' in mutating
    scheduling = records["kube:pod_scheduling_sli_duration_seconds:p99_rate5m"]
    assert "scheduler_pod_scheduling_sli_duration_seconds_bucket" in scheduling
    assert (
        "kubelet_pod_start_sli_duration_seconds_bucket"
        in (records["kube:pod_startup_sli_duration_seconds:p99_rate5m"])
    )


def test_the_slo_file_holds_the_two_objectives_of_the_issue() -> None:
    slos = {s.name: s for s in load_slo_file(SLOS)}
    assert {"kube-mutating-api-latency-p99": 1.0, "kube-pod-startup-p99": 5.0} == {
        name: s.objective for name, s in slos.items()
    }
    assert all(s.comparator == "<=" for s in slos.values())
