"""The Prometheus driver against a real /usr/bin/prometheus scraping itself every second."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from harness.drivers.prometheus import PrometheusClient, parse_duration_s
from harness.slo import PromQuery
from harness.util.errors import DriverError
from harness.util.net import free_port
from tests.integration.conftest import scratch_prometheus

pytestmark = pytest.mark.integration

CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusClient]:
    """A real Prometheus on a free loopback port, for this module; always terminated."""
    with scratch_prometheus(tmp_path_factory.mktemp("prometheus"), CONFIG) as client:
        yield client


def test_up_is_one_for_the_scraped_prometheus(prometheus: PrometheusClient) -> None:
    prometheus.wait_targets_up(["prometheus"], timeout_s=20)
    deadline = time.monotonic() + 20
    samples = prometheus.instant("up", time.time())
    while not samples and time.monotonic() < deadline:
        time.sleep(0.2)
        samples = prometheus.instant("up", time.time())

    assert [("prometheus", 1.0)] == [(labels["job"], value) for labels, value in samples]


def test_a_range_query_returns_points_in_the_window(prometheus: PrometheusClient) -> None:
    prometheus.wait_targets_up(["prometheus"], timeout_s=20)
    time.sleep(2.5)
    end = time.time()

    series = prometheus.range("up", start=end - 5, end=end, step_s=1)

    assert ["prometheus"] == [labels["job"] for labels, _ in series]
    assert all(value == 1.0 for _, points in series for _, value in points)


def test_a_bad_query_is_a_driver_error_naming_url_and_query(prometheus: PrometheusClient) -> None:
    with pytest.raises(DriverError) as caught:
        prometheus.instant("sum(rate(up[1m]", time.time())

    message = str(caught.value)
    assert prometheus.url in message
    assert "'sum(rate(up[1m]'" in message
    assert "parse error" in message


def test_a_missing_job_times_out_naming_it(prometheus: PrometheusClient) -> None:
    with pytest.raises(DriverError, match="job 'probe-api' has no targets"):
        prometheus.wait_targets_up(["probe-api"], timeout_s=0.5)


def test_the_scrape_interval_comes_from_the_live_config(prometheus: PrometheusClient) -> None:
    assert 1.0 == prometheus.scrape_interval_s("prometheus")


def test_an_unreachable_prometheus_is_a_driver_error() -> None:
    client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_s=1)

    with pytest.raises(DriverError, match="did not answer the query 'up'"):
        client.instant("up", time.time())


def test_the_client_satisfies_the_slo_query_seam() -> None:
    seam: PromQuery = PrometheusClient("http://127.0.0.1:9", timeout_s=1)

    assert callable(seam.instant)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("15s", 15.0, id="seconds"),
        pytest.param("1m30s", 90.0, id="compound"),
        pytest.param("500ms", 0.5, id="milliseconds"),
    ],
)
def test_prometheus_durations_are_parsed(text: str, seconds: float) -> None:
    assert seconds == parse_duration_s(text)
