"""A probe SLO whose probe job was not scraped in its window is INVALID: checked against a real
Prometheus scraping one live and one dead target."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from harness.drivers.prometheus import PrometheusClient
from harness.engine._validity import failed_scrapes, with_scrape_gaps
from harness.model import SloResult, Verdict, Window
from harness.slo import Comparator, Indicator, IndicatorKind, SloSpec
from harness.util.net import free_port
from tests.integration.conftest import scratch_prometheus

pytestmark = pytest.mark.integration

CONFIG = """
global: {scrape_interval: 1s, scrape_timeout: 500ms}
scrape_configs:
  - job_name: probe-live
    static_configs: [{targets: ["127.0.0.1:{live}"]}]
  - job_name: probe-dead
    static_configs: [{targets: ["127.0.0.1:{dead}"]}]
"""
WAIT_S = 30


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusClient]:
    registry = CollectorRegistry()
    Gauge("probe_success", "1 when the probe succeeded.", registry=registry).set(1)
    live = free_port()
    server, thread = start_http_server(live, addr="127.0.0.1", registry=registry)
    config = CONFIG.replace("{live}", str(live)).replace("{dead}", str(free_port()))
    try:
        with scratch_prometheus(tmp_path_factory.mktemp("prometheus"), config) as client:
            client.wait_targets_up(["probe-live"], timeout_s=WAIT_S)
            yield client
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def window_with_scrapes(prom: PrometheusClient) -> Window:
    """The last seconds, once Prometheus has recorded at least three scrapes of each job."""
    deadline = time.monotonic() + WAIT_S
    while True:
        now = time.time()
        window = Window("run", now - 10, now)
        counts = [failed_scrapes(prom, job, window)[1] for job in ("probe-dead", "probe-live")]
        if min(counts) >= 3 or time.monotonic() > deadline:
            return window
        time.sleep(0.5)


def uptime(name: str, job: str, window: Window) -> tuple[SloSpec, SloResult]:
    spec = SloSpec(
        name=name,
        indicator=Indicator(kind=IndicatorKind.PROBE_UPTIME, job=job),
        objective=0.9,
        comparator=Comparator.GE,
    )
    result = SloResult(name, Verdict.PASS, 1.0, 0.9, ">=", window, detail="10 of 10 probes")
    return spec, result


def test_failed_scrapes_counts_what_up_says(prometheus: PrometheusClient) -> None:
    window = window_with_scrapes(prometheus)

    failed, total = failed_scrapes(prometheus, "probe-dead", window)
    live_failed, live_total = failed_scrapes(prometheus, "probe-live", window)

    assert total >= 3 and failed == total
    assert live_total >= 3 and live_failed == 0


def test_a_probe_slo_over_a_scrape_gap_is_invalid_and_one_without_stays(
    prometheus: PrometheusClient,
) -> None:
    window = window_with_scrapes(prometheus)
    dead_spec, dead = uptime("dead-uptime", "probe-dead", window)
    live_spec, live = uptime("live-uptime", "probe-live", window)

    checked = with_scrape_gaps([dead, live], [dead_spec, live_spec], prometheus)

    assert [Verdict.INVALID, Verdict.PASS] == [r.verdict for r in checked]
    assert "scrapes of the probe job 'probe-dead' failed" in checked[0].detail
    assert "never taken" in checked[0].detail
