"""The local target's alerting files pass the real tools: the rules rendered from the platform's
rules file pass ``promtool check rules`` and fire as scaled in ``promtool test rules``; the
Prometheus config that loads them passes ``promtool check config``; Alertmanager's config passes
``amtool check-config``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.targets import _alerts, _configs


def _run(tool: str, *args: str, cwd: Path | None = None) -> None:
    binary = shutil.which(tool)
    if binary is None:
        pytest.fail(f"{tool} is not installed; run scripts/setup.sh (Debian prometheus packages).")
    out = subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )
    assert 0 == out.returncode, out.stdout + out.stderr


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / _alerts.RULES_FILE
    path.write_text(_alerts.local_rules_yml())
    return path


def test_promtool_accepts_the_rendered_rules(rules: Path) -> None:
    _run("promtool", "check", "rules", str(rules))


def test_promtool_accepts_the_prometheus_config_that_loads_them(
    rules: Path, tmp_path: Path
) -> None:
    sd = tmp_path / "gs.json"
    sd.write_text("[]")
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        _configs.prometheus_yml(
            jobs={"refplat-api": ["127.0.0.1:1"]},
            blackbox="127.0.0.1:2",
            api_health_url="http://127.0.0.1:3/healthz",
            gameservers_sd_file=str(sd),
            rule_files=[str(rules)],
            alertmanagers=["127.0.0.1:4"],
        )
    )
    _run("promtool", "check", "config", str(cfg))


def test_amtool_accepts_the_alertmanager_config(tmp_path: Path) -> None:
    cfg = tmp_path / "alertmanager.yml"
    cfg.write_text(_alerts.alertmanager_yml(webhook_url="http://127.0.0.1:1/alerts"))
    _run("amtool", "check-config", str(cfg))


def test_one_of_two_api_replicas_down_pages_after_six_seconds_not_before(
    rules: Path, tmp_path: Path
) -> None:
    """``RefplatApiReplicasLow`` has ``for: 2m`` in production, 6 s here: replica b is down
    from 5 s, so the alert is pending from 5 s and firing from 11 s.

    The alert reads a recording rule of another group. Without ``group_eval_order`` promtool
    evaluates the groups in map order, so in some runs the alert saw the previous step's
    recording and fired a step late (CI, stop 11); the order is pinned as Prometheus' own
    rule manager would run them one after the other."""
    name = "RefplatApiReplicasLow"
    (rule,) = [
        r
        for g in yaml.safe_load(rules.read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == name
    ]
    paging = {"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}
    tests = {
        "rule_files": [str(rules)],
        "evaluation_interval": "1s",
        "group_eval_order": [g["name"] for g in yaml.safe_load(rules.read_text())["groups"]],
        "tests": [
            {
                "interval": "1s",
                "input_series": [
                    {"series": 'up{job="refplat-api", instance="a"}', "values": "1x30"},
                    {"series": 'up{job="refplat-api", instance="b"}', "values": "1x4 0x26"},
                ],
                "alert_rule_test": [
                    {"eval_time": "10s", "alertname": name, "exp_alerts": []},
                    {"eval_time": "11s", "alertname": name, "exp_alerts": [paging]},
                ],
            }
        ],
    }
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    _run("promtool", "test", "rules", str(path))
