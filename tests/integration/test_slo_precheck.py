"""The metric pre-check against a real Prometheus scraping itself and a prometheus_client
exporter started by the test, each every second."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from harness.drivers.prometheus import PrometheusClient
from harness.slo import (
    Comparator,
    Indicator,
    IndicatorKind,
    LiveIndicators,
    SloSpec,
    metric_names,
    unknown_metric_problems,
)
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
  - job_name: exporter
    static_configs:
      - targets: ["127.0.0.1:{exporter}"]
  - job_name: text-exporter
    static_configs:
      - targets: ["127.0.0.1:{text_exporter}"]
"""
EXPORTED = {
    "precheck_jobs_total",  # a counter: OpenMetrics family precheck_jobs
    "precheck_queue_depth",  # a gauge
    "precheck_latency_seconds_bucket",  # a labelled histogram never observed: metadata only
    "precheck_latency_seconds_count",
    "precheck_latency_seconds_sum",
    "precheck_text_errors_total",  # a labelled counter in the text format, never counted
}
WAIT_S = 30


@pytest.fixture(scope="module")
def exporter_port() -> Iterator[int]:
    """A prometheus_client HTTP exporter on a free loopback port; shut down afterwards."""
    registry = CollectorRegistry()
    Counter("precheck_jobs", "Jobs done.", registry=registry).inc(3)
    Gauge("precheck_queue_depth", "Jobs waiting.", registry=registry).set(2)
    Histogram("precheck_latency_seconds", "Time per job.", labelnames=("route",), registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def text_exporter_port() -> Iterator[int]:
    """An exporter always answering in the classic text format, as refplat's processes do."""
    registry = CollectorRegistry()
    Counter("precheck_text_errors", "Errors by scope.", labelnames=("scope",), registry=registry)

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, exporter_port: int, text_exporter_port: int
) -> Iterator[PrometheusClient]:
    """A real Prometheus scraping itself and the exporter, with both targets up."""
    config = CONFIG.replace("{exporter}", str(exporter_port)).replace(
        "{text_exporter}", str(text_exporter_port)
    )
    with scratch_prometheus(tmp_path_factory.mktemp("prometheus"), config) as client:
        client.wait_targets_up(["prometheus", "exporter", "text-exporter"], timeout_s=WAIT_S)
        yield client


@pytest.fixture(scope="module")
def known(prometheus: PrometheusClient) -> set[str]:
    """The metric names Prometheus knows once the exporter has been scraped (bounded wait)."""
    deadline = time.monotonic() + WAIT_S
    names = prometheus.metric_names()
    while not EXPORTED <= names and time.monotonic() < deadline:
        time.sleep(0.2)
        names = prometheus.metric_names()
    return names


def threshold(promql: str) -> SloSpec:
    return SloSpec(
        name="precheck-latency",
        indicator=Indicator(kind=IndicatorKind.THRESHOLD, promql=promql),
        objective=0.5,
        comparator=Comparator.LE,
        source="slos/precheck.yaml:7",
    )


def test_metric_names_holds_every_exported_metric_and_prometheus_own(known: set[str]) -> None:
    assert set() == EXPORTED - known
    assert {"up", "prometheus_http_requests_total"} <= known


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("precheck_latency_seconds_bucket", id="openmetrics-histogram"),
        pytest.param("precheck_text_errors_total", id="text-format-counter"),
    ],
)
def test_a_labelled_metric_never_observed_is_known_from_metadata_only(
    prometheus: PrometheusClient, known: set[str], name: str
) -> None:
    series = prometheus.instant(name, time.time())

    assert [] == series
    assert name in known


def test_the_queries_of_a_correct_slo_have_no_unknown_metric(known: set[str]) -> None:
    query = (
        "histogram_quantile(0.99, sum by (le) (increase(precheck_latency_seconds_bucket"
        "[$window]))) or sum(increase(precheck_jobs_total[$window])) * 0"
    )

    assert [] == unknown_metric_problems([threshold(query)], known)


def test_a_misspelt_metric_is_reported_with_file_line_and_the_right_name(
    known: set[str],
) -> None:
    query = "sum(increase(precheck_job_total[$window]))"

    problems = unknown_metric_problems([threshold(query)], known)

    assert [
        "slos/precheck.yaml:7: SLO 'precheck-latency', field 'indicator.promql': Prometheus "
        "has no series and no metadata for the metric 'precheck_job_total'; "
        "did you mean 'precheck_jobs_total'?"
    ] == problems


def test_every_name_prometheus_reports_reads_back_as_a_metric_name(known: set[str]) -> None:
    unread = {name for name in known if metric_names(name) != {name}}

    assert set() == unread


def test_live_values_come_from_the_real_prometheus(
    prometheus: PrometheusClient, known: set[str]
) -> None:
    depth = threshold("max(max_over_time(precheck_queue_depth[$window]))")
    missing = threshold("max(max_over_time(precheck_queue_depht[$window]))")
    live = LiveIndicators(prometheus, [depth, replace(missing, name="typo")], trailing_s=30)

    assert {"precheck-latency": "2", "typo": "no data"} == live.values(time.time())
