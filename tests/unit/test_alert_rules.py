"""Alerting on the local target: the platform's rules rendered for short runs, Alertmanager's
route, the alerts file folded into one record per alert."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.targets import _alerts, _configs
from harness.util.errors import ConfigError, InfraError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("2m", 120), ("1h30m", 5400), ("500ms", 0.5), ("1d", 86400)],
    ids=["seconds", "minutes", "compound", "milliseconds", "days"],
)
def test_a_prometheus_duration_parses_to_seconds(text: str, seconds: float) -> None:
    assert seconds == _alerts.parse_duration(text)


@pytest.mark.parametrize("text", ["", "2", "2 m", "m2", "1.5m", "2min"])
def test_a_malformed_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        _alerts.parse_duration(text)


@pytest.mark.parametrize(
    ("production", "local"),
    [("30s", "3s"), ("1m", "3s"), ("2m", "6s"), ("5m", "15s"), ("10m", "30s"), ("90s", "4500ms")],
)
def test_for_is_divided_by_twenty_and_at_least_three_seconds(production: str, local: str) -> None:
    assert local == _alerts.scaled_for(production)


def _alert_rules(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def test_the_local_rules_are_the_platforms_with_scaled_for_and_no_group_interval() -> None:
    source = yaml.safe_load(_alerts.RULES_SOURCE.read_text())["groups"]
    local = yaml.safe_load(_alerts.local_rules_yml())["groups"]

    assert [g["name"] for g in source] == [g["name"] for g in local]
    assert [] == [g["name"] for g in local if "interval" in g]
    expected = {
        name: {**rule, **({"for": _alerts.scaled_for(rule["for"])} if "for" in rule else {})}
        for name, rule in _alert_rules(source).items()
    }
    assert expected == _alert_rules(local)
    records = [[r for r in g["rules"] if "record" in r] for g in source]
    assert records == [[r for r in g["rules"] if "record" in r] for g in local]


def test_a_bad_for_in_the_rules_names_the_file_and_line(tmp_path: Path) -> None:
    source = tmp_path / "rules.yaml"
    source.write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n"
        "        for: 2 minutes\n"
    )
    with pytest.raises(ConfigError, match=rf"{source}:6: '2 minutes' is not a Prometheus"):
        _alerts.local_rules_yml(source)


def test_missing_rules_are_an_infrastructure_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match="alert rules are missing"):
        _alerts.local_rules_yml(tmp_path / "nowhere.yaml")


def test_alertmanager_routes_every_alert_to_the_webhook_with_resolutions() -> None:
    config = yaml.safe_load(_alerts.alertmanager_yml(webhook_url="http://127.0.0.1:1/alerts"))
    assert ["..."] == config["route"]["group_by"]
    ((receiver,),) = [r["webhook_configs"] for r in config["receivers"]]
    assert config["route"]["receiver"] == config["receivers"][0]["name"]
    assert ("http://127.0.0.1:1/alerts", True) == (receiver["url"], receiver["send_resolved"])


def test_prometheus_loads_rules_and_sends_alerts_only_when_asked() -> None:
    args = {"jobs": {}, "blackbox": "b:1", "api_health_url": "http://a/healthz"}
    plain = yaml.safe_load(_configs.prometheus_yml(**args, gameservers_sd_file="sd.json"))
    alerting = yaml.safe_load(
        _configs.prometheus_yml(
            **args, gameservers_sd_file="sd.json", rule_files=["r.yaml"], alertmanagers=["h:9093"]
        )
    )
    assert ("rule_files" in plain, "alerting" in plain) == (False, False)
    assert ["r.yaml"] == alerting["rule_files"]
    targets = alerting["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert ["h:9093"] == targets


def _notification(status: str, starts: str, ends: str, **labels: str) -> str:
    labels = {"alertname": "A", **labels}
    line = {"status": status, "labels": labels, "starts_at": starts, "ends_at": ends}
    return json.dumps(line) + "\n"


NEVER = "0001-01-01T00:00:00Z"


def test_firing_then_resolved_is_one_alert_with_its_end(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text(
        _notification("firing", "2026-01-01T00:00:00Z", NEVER, severity="page")
        + _notification(
            "resolved", "2026-01-01T00:00:00Z", "2026-01-01T00:00:09.5Z", severity="page"
        )
    )
    (alert,) = _alerts.fired_alerts(path)
    assert ("A", 9.5, {"alertname": "A", "severity": "page"}) == (
        alert.name,
        (alert.end or 0) - alert.start,
        dict(alert.labels),
    )


def test_an_alert_that_fires_again_is_a_second_record_and_a_late_repeat_reopens_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text(
        _notification("resolved", "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z")
        + _notification("firing", "2026-01-01T00:00:00Z", NEVER)
        + _notification("firing", "2026-01-01T00:01:00Z", NEVER)
        + _notification("firing", "2026-01-01T00:00:30Z", NEVER, instance="other")
    )
    alerts = _alerts.fired_alerts(path)
    assert [("A", True), ("A", False), ("A", False)] == [
        (a.name, a.end is not None) for a in alerts
    ]
    assert [0.0, 30.0, 60.0] == [a.start - alerts[0].start for a in alerts]


def test_a_torn_line_is_skipped_and_a_missing_file_means_no_alerts(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    path.write_text(_notification("firing", "2026-01-01T00:00:00Z", NEVER) + '{"status": "fir')
    assert ["A"] == [a.name for a in _alerts.fired_alerts(path)]
    assert () == _alerts.fired_alerts(tmp_path / "none.jsonl")
