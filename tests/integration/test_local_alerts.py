"""The local target's alerting: the platform's rules fire on a real fault, Alertmanager holds the
alert, and the run directory records it."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from harness.model import Endpoints
from harness.targets import _alerts, _alertsink
from harness.targets._local import LocalTarget, LocalTopology
from harness.util.http import request
from harness.util.net import free_port

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

T = TypeVar("T")
ALERT = "RefplatApiReplicasLow"  # fewer than 2 API replicas up; `for: 2m` in production


def _wait(what: str, check: Callable[[], T | None], *, timeout_s: float = 60.0) -> T:
    """Poll ``check`` until it returns a value; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (found := check()) is not None:
            return found
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout_s:g} s")


def _url(endpoints: Endpoints, role: str) -> str:
    (url,) = [p.url for p in endpoints.processes if p.role == role]
    return url


def _firing(alertmanager: str) -> dict[str, Any] | None:
    answer = request("GET", f"{alertmanager}/api/v2/alerts?active=true", timeout_s=5)
    alerts = answer.json() if answer.ok else []
    return next((a for a in alerts if a["labels"]["alertname"] == ALERT), None)


def _recorded(path: Path) -> _alerts.FiredAlert | None:
    return next((a for a in _alerts.fired_alerts(path) if a.name == ALERT), None)


def test_a_killed_api_replica_fires_an_alert_recorded_in_the_run_directory(
    tmp_path: Path,
) -> None:
    topology = LocalTopology(api_replicas=2, controller_replicas=1, node_agents=1)
    with LocalTarget(run_id="alerts", run_dir=tmp_path, topology=topology) as target:
        endpoints = target.deploy()
        rules = request("GET", f"{endpoints.prometheus_url}/api/v1/rules", timeout_s=5).json()
        groups = {g["name"]: g for g in rules["data"]["groups"]}
        assert {"refplat-sli", "refplat-alerts"} == set(groups)
        durations = {r["name"]: r["duration"] for r in groups["refplat-alerts"]["rules"]}
        assert 6 == durations[ALERT]  # 2 min / 20
        alertmanager = _url(endpoints, "alertmanager")

        killed_at = time.time()
        (api_2,) = [p.pid for p in endpoints.processes if p.name == "api-2"]
        os.kill(api_2, signal.SIGKILL)
        firing = _wait(f"{ALERT} firing in Alertmanager", lambda: _firing(alertmanager))
        assert "page" == firing["labels"]["severity"]
        alerts_file = tmp_path / _alerts.ALERTS_FILE
        fired = _wait(f"{ALERT} in {alerts_file}", lambda: _recorded(alerts_file))
        assert killed_at < fired.start
        assert {"alertname": ALERT, "severity": "page"} == dict(fired.labels)
        # The rules were loaded once every target was scraped: nothing fired during the deploy.
        assert [] == [a.name for a in _alerts.fired_alerts(alerts_file) if a.start < killed_at]


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    out = tmp_path / "alerts.jsonl"
    port = free_port()
    server = _alertsink.serve("127.0.0.1", port, out)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", out
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_the_sink_appends_each_notified_alert_and_rejects_what_is_not_a_notification(
    sink: tuple[str, Path],
) -> None:
    url, out = sink
    alert = {
        "status": "resolved",
        "labels": {"alertname": "X", "severity": "page"},
        "annotations": {"summary": "s"},
        "startsAt": "2026-11-30T23:40:01.5Z",
        "endsAt": "2026-11-30T23:40:09Z",
        "fingerprint": "abc",
    }
    assert 200 == request("POST", f"{url}/alerts", timeout_s=5, payload={"alerts": [alert]}).status
    assert 400 == request("POST", f"{url}/alerts", timeout_s=5, payload={"no": "alerts"}).status
    (recorded,) = _alerts.fired_alerts(out)
    assert ("X", 7.5) == (recorded.name, (recorded.end or 0) - recorded.start)
