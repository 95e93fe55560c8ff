"""Per-second request statistics and Prometheus metrics for the harness, as a Locust plugin.

A locustfile imports this module; Locust then accepts three more flags. Without them (plain
``locust -f``) nothing is recorded or served.

``--harness-stats-file PATH``: every request this process makes is counted in the second it
ended, by name, with its response time rounded as Locust rounds it, so the harness can cut exact
counts and percentiles per phase (baseline, each fault, recovery) rather than whole-run totals.
The file is written when Locust quits, after its users have stopped. In a distributed run the
requests happen on the workers: each worker is given its own file and the harness merges them.

``--harness-metrics-port PORT`` (with ``--harness-metrics-host``, default 127.0.0.1): the master,
or the single process, serves Locust's statistics in the Prometheus text format on
``/metrics``, read from Locust's own (merged) statistics at each scrape, so load and SLIs share
one timeline. Workers report to the master each second rather than Locust's 3 s for the same
reason. Served, on a registry of this module's own:

- ``locust_requests_total{method,name}`` and ``locust_request_failures_total{method,name,kind}``
  (``kind`` is the exception's class, or the failure's text cut to 60 characters);
- ``locust_response_time_seconds{method,name}``, a histogram of the response times as Locust
  rounds them (2 significant digits above 100 ms);
- ``locust_users``, ``locust_workers`` (workers connected to the master, 0 for one process) and
  ``locust_cpu_usage_ratio{process}`` (``master``, ``local`` or ``worker-N``, a share of one
  core as Locust last sampled it, every 10 s).
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import locust.runners
from gevent.pywsgi import WSGIServer
from locust import events
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

# second -> "METHOD name" -> {"n": count, "f": failures, "rt": {rounded ms: count}}
_SECONDS: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
_STATE: dict[str, Any] = {}

BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WORKER_REPORT_INTERVAL_S = 1.0
_KIND = re.compile(r"([A-Za-z_][\w.]*)\(")


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument("--harness-stats-file", default="", help="write per-second statistics")
    parser.add_argument(
        "--harness-metrics-port",
        type=int,
        default=0,
        help="serve Prometheus metrics on this port (master or single process; 0: off)",
    )
    parser.add_argument(
        "--harness-metrics-host", default="127.0.0.1", help="address of the metrics listener"
    )


def _rounded(ms: float) -> int:
    """Locust's own rounding of response times (2 significant digits above 100 ms)."""
    if ms < 100:
        return round(ms)
    if ms < 1000:
        return int(round(ms, -1))
    return int(round(ms, -2))


@events.request.add_listener
def _on_request(
    request_type: str, name: str, response_time: float, exception: Any = None, **_kw: Any
) -> None:
    key = f"{request_type} {name}"
    bucket = _SECONDS[int(time.time())].setdefault(key, {"n": 0, "f": 0, "rt": {}})
    bucket["n"] += 1
    if exception is not None:
        bucket["f"] += 1
    rt = _rounded(response_time or 0)
    bucket["rt"][rt] = bucket["rt"].get(rt, 0) + 1


@events.init.add_listener
def _on_init(environment: Any, runner: Any = None, **_kw: Any) -> None:
    options = environment.parsed_options
    if options is None:  # imported by a test, not started by Locust's CLI
        return
    _STATE["stats_file"] = getattr(options, "harness_stats_file", "")
    port = getattr(options, "harness_metrics_port", 0)
    if isinstance(runner, locust.runners.WorkerRunner):
        if _STATE["stats_file"]:
            locust.runners.WORKER_REPORT_INTERVAL = WORKER_REPORT_INTERVAL_S
        return
    if port:
        _STATE["server"] = _serve(environment, options.harness_metrics_host, port)


def _write_stats() -> None:
    if path := _STATE.get("stats_file"):
        Path(path).write_text(json.dumps({"seconds": _SECONDS}))


@events.quitting.add_listener
def _on_quitting(**_kw: Any) -> None:
    _write_stats()  # early, in case Locust dies while its users stop


@events.quit.add_listener
def _on_quit(**_kw: Any) -> None:
    # Again, with the requests of users that finished their task meanwhile. Nothing here may
    # yield to gevent: Locust would run its shutdown a second time and overwrite its JSON file.
    # The metrics listener ends with the process.
    _write_stats()


# --- Prometheus ---------------------------------------------------------------------------------


def _serve(environment: Any, host: str, port: int) -> WSGIServer:
    registry = CollectorRegistry()
    registry.register(LocustCollector(environment))
    server = WSGIServer((host, port), make_wsgi_app(registry), log=None)
    try:
        server.start()
    except OSError as exc:
        raise SystemExit(
            f"--harness-metrics-port {port}: cannot listen on {host}:{port} ({exc}); "
            "pass a free port"
        ) from None
    return server


class LocustCollector:
    """Locust's statistics as Prometheus metric families, read at each scrape."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment

    def collect(self) -> Iterator[Metric]:
        stats = self.environment.stats
        runner = self.environment.runner
        requests = CounterMetricFamily(
            "locust_requests", "Requests made, by type and name.", labels=["method", "name"]
        )
        times = HistogramMetricFamily(
            "locust_response_time_seconds",
            "Response times as Locust rounds them, by type and name.",
            labels=["method", "name"],
        )
        for entry in list(stats.entries.values()):
            labels = [str(entry.method), str(entry.name)]
            requests.add_metric(labels, entry.num_requests)
            times.add_metric(
                labels, _buckets(entry.response_times), entry.total_response_time / 1000
            )
        yield requests
        yield _failures(stats)
        yield times
        yield GaugeMetricFamily(
            "locust_users", "Users running now.", value=runner.user_count if runner else 0
        )
        workers = runner.worker_count if isinstance(runner, locust.runners.MasterRunner) else 0
        yield GaugeMetricFamily("locust_workers", "Workers connected to the master.", value=workers)
        yield _cpu(runner)


def _failures(stats: Any) -> CounterMetricFamily:
    kinds: dict[tuple[str, str, str], int] = defaultdict(int)
    for error in list(stats.errors.values()):
        kinds[(str(error.method), str(error.name), failure_kind(str(error.error)))] += (
            error.occurrences
        )
    family = CounterMetricFamily(
        "locust_request_failures",
        "Failed requests, by type, name and kind of failure.",
        labels=["method", "name", "kind"],
    )
    for labels, count in sorted(kinds.items()):
        family.add_metric(list(labels), count)
    return family


def failure_kind(error: str) -> str:
    """The exception class of a Locust error text (``ConnectionRefusedError(111, ...)``), else
    the text itself cut to 60 characters: a bounded label."""
    match = _KIND.match(error)
    return match.group(1) if match else error[:60]


def _buckets(response_times: dict[int, int]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for bound in BUCKETS_S:
        limit_ms = bound * 1000
        out.append((repr(bound), sum(c for ms, c in response_times.items() if ms <= limit_ms)))
    out.append(("+Inf", sum(response_times.values())))
    return out


def _cpu(runner: Any) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "locust_cpu_usage_ratio",
        "CPU used by each Locust process, as a share of one core (sampled every 10 s).",
        labels=["process"],
    )
    if runner is None:
        return family
    is_master = isinstance(runner, locust.runners.MasterRunner)
    family.add_metric(["master" if is_master else "local"], runner.current_cpu_usage / 100)
    if is_master:
        for node in list(runner.clients.values()):
            index = runner.get_worker_index(node.id)
            family.add_metric([f"worker-{index}"], node.cpu_usage / 100)
    return family
