"""The recording rules and alerts of Kubernetes' own SLIs pass promtool, record the SLIs the
SLO file judges, and alert at the SLO file's objectives."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.slo import load_slo_file
from harness.targets._configs import kube_control_plane_scrape_jobs, prometheus_yml
from tests.conftest import REPO_ROOT

RULES = REPO_ROOT / "platform/manifests/base/rules/kube-control-plane.rules.yaml"
SLOS = REPO_ROOT / "slos/kube.yaml"


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
    slos = {s.name: s for s in load_slo_file(SLOS) if s.name.startswith("kube-")}
    assert {"kube-mutating-api-latency-p99": 1.0, "kube-pod-startup-p99": 5.0} == {
        name: s.objective for name, s in slos.items()
    }
    assert all(s.comparator == "<=" for s in slos.values())


@pytest.mark.parametrize("credentials", ["client-certificate", "bearer-token"])
def test_promtool_accepts_a_config_scraping_the_control_plane(
    credentials: str, tmp_path: Path
) -> None:
    """What the kube target renders for an admin kubeconfig with a certificate or a token."""
    for name in ("ca.crt", "client.crt", "client.key", "token"):
        (tmp_path / name).write_text("x")
    auth = (
        {"cert_file": str(tmp_path / "client.crt"), "key_file": str(tmp_path / "client.key")}
        if credentials == "client-certificate"
        else {"token_file": str(tmp_path / "token")}
    )
    jobs = kube_control_plane_scrape_jobs(
        apiserver="127.0.0.1:6443",
        ca_file=str(tmp_path / "ca.crt"),
        scheduler="127.0.0.1:10259",
        **auth,
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(
        prometheus_yml(
            jobs={"refplat-api": ["127.0.0.1:1"]},
            blackbox="127.0.0.1:2",
            api_health_url="http://127.0.0.1:3/healthz",
            gameservers_sd_file=str(tmp_path / "gs.json"),
            rule_files=[str(RULES)],
            extra_scrape_configs=jobs,
        )
    )
    (tmp_path / "gs.json").write_text("[]")
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is not installed (scripts/setup.sh)"
    out = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert 0 == out.returncode, out.stdout + out.stderr
    assert ["kube-apiserver", "kube-scheduler"] == [
        j["job_name"] for j in yaml.safe_load(config.read_text())["scrape_configs"][-2:]
    ]
