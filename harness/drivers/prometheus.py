"""Prometheus driver: instant and range queries, readiness and target health, over HTTP.

Wraps prometheus-api-client's ``PrometheusConnect``; every third-party error is turned once,
here, into a DriverError whose message names the URL and the query. ``PrometheusClient``
satisfies ``harness.slo.PromQuery`` structurally.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

import requests
import yaml
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from harness.util.errors import DriverError

T = TypeVar("T")

Labels = dict[str, str]
POLL_S = 0.2
_DURATION = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class PrometheusClient:
    """A Prometheus server at ``url``; every HTTP call is bounded by ``timeout_s``."""

    def __init__(self, url: str, *, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        retry = Retry(total=1, backoff_factor=0.1, status_forcelist=[502, 503, 504])
        self._api = PrometheusConnect(url=self.url, retry=retry, timeout=timeout_s)

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def instant(self, query: str, at: float) -> list[tuple[Labels, float]]:
        """Return the ``(labels, value)`` pairs of ``query`` evaluated at POSIX time ``at``."""
        result = self._call(query, lambda: self._api.custom_query(query, params={"time": at}))
        return samples_from_result(result)

    def range(
        self, query: str, *, start: float, end: float, step_s: float
    ) -> list[tuple[Labels, list[tuple[float, float]]]]:
        """Return each series of ``query`` over ``[start, end]`` as ``(labels, [(t, v), ...])``."""
        result = self._call(
            query,
            lambda: self._api.custom_query_range(
                query, start_time=_utc(start), end_time=_utc(end), step=f"{step_s:g}s"
            ),
        )
        return [
            (_labels(item), [(float(t), float(v)) for t, v in item.get("values", [])])
            for item in result
        ]

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until ``/-/ready`` answers 200; raise DriverError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            try:
                response = requests.get(f"{self.url}/-/ready", timeout=min(1.0, self.timeout_s))
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(POLL_S)
        raise DriverError(
            f"Prometheus at {self.url} was not ready within {timeout_s:g} s (last: {last}); "
            "check its log and configuration."
        )

    def wait_targets_up(self, jobs: Iterable[str], timeout_s: float) -> None:
        """Wait until every scrape target of each of ``jobs`` exists and is up."""
        wanted = sorted(set(jobs))
        deadline = time.monotonic() + timeout_s
        while True:
            down = self._targets_down(wanted)
            if not down:
                return
            if time.monotonic() >= deadline:
                raise DriverError(
                    f"Prometheus at {self.url}: scrape targets not up within {timeout_s:g} s: "
                    f"{'; '.join(down)}; check that those services run and expose /metrics."
                )
            time.sleep(POLL_S)

    def _targets_down(self, jobs: Sequence[str]) -> list[str]:
        data = self._call("targets", lambda: self._api.get_targets(state="active"))
        active = data.get("activeTargets", [])
        down = []
        for job in jobs:
            mine = [t for t in active if t.get("labels", {}).get("job") == job]
            if not mine:
                down.append(f"job '{job}' has no targets")
            down.extend(_describe_target(job, t) for t in mine if t.get("health") != "up")
        return down

    def scrape_interval_s(self, job: str | None = None) -> float:
        """Return the scrape interval of ``job`` (or the global one), read from the live config."""
        data = self._call("status/config", self._config)
        config = yaml.safe_load(data.get("yaml", "")) or {}
        interval = config.get("global", {}).get("scrape_interval", "1m")
        for scrape in config.get("scrape_configs", []):
            if job is not None and scrape.get("job_name") == job:
                interval = scrape.get("scrape_interval", interval)
        return parse_duration_s(str(interval))

    def metric_names(self) -> set[str]:
        """Return every metric name Prometheus knows: those with series, and each family in the
        scrape metadata with the series names it yields (a labelled histogram with no observation
        yet has metadata but no series)."""
        names = self._call("label __name__ values", lambda: self._api.get_label_values("__name__"))
        metadata = self._call("metadata", lambda: self._api.get_metric_metadata(""))
        known = {str(name) for name in names}
        for entry in metadata:
            known |= family_series(str(entry["metric_name"]), str(entry.get("type", "unknown")))
        return known

    def _config(self) -> Any:
        response = requests.get(f"{self.url}/api/v1/status/config", timeout=self.timeout_s)
        response.raise_for_status()
        return response.json()["data"]

    def _call(self, query: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except PrometheusApiClientException as exc:
            raise DriverError(
                f"Prometheus at {self.url} rejected the query {query!r}: {_reason(exc)}; "
                "fix the query (try it in the Prometheus UI)."
            ) from exc
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise DriverError(
                f"Prometheus at {self.url} did not answer the query {query!r} "
                f"({type(exc).__name__}: {exc}); check that it runs and is reachable."
            ) from exc


def samples_from_result(result: Any) -> list[tuple[Labels, float]]:
    """Return ``(labels, value)`` pairs from the ``data.result`` of an instant query.

    A vector gives one pair per series; a scalar (``[t, "v"]``) gives one pair with no labels.
    """
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return [({}, _number(result[1]))]
    return [(_labels(item), _number(item["value"][1])) for item in result or []]


def family_series(name: str, kind: str) -> set[str]:
    """Return the series names a metric family of type ``kind`` (metadata ``type``) yields.

    A histogram yields ``_bucket``, ``_sum`` and ``_count`` series (and OpenMetrics ``_created``),
    not its family name; a counter family ``x`` (OpenMetrics) is stored as ``x_total``, while the
    classic text format already names it ``x_total``.
    """
    match kind:
        case "counter":
            return {name} if name.endswith("_total") else {f"{name}_total", f"{name}_created"}
        case "histogram":
            return {name + suffix for suffix in ("_bucket", "_sum", "_count", "_created")}
        case "gaugehistogram":
            return {name + suffix for suffix in ("_bucket", "_gsum", "_gcount")}
        case "summary":
            return {name + suffix for suffix in ("", "_sum", "_count", "_created")}
        case "info":
            return {f"{name}_info"}
        case _:
            return {name}


def parse_duration_s(text: str) -> float:
    """Return a Prometheus duration (``15s``, ``1m30s``, ``500ms``) in seconds."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise DriverError(f"'{text}' is not a Prometheus duration; write one like 15s or 1m30s.")
    return sum(int(n) * _UNIT_S[u] for n, u in parts)


def _number(text: Any) -> float:
    return float(text)  # Prometheus writes NaN, +Inf and -Inf, which float() reads


def _describe_target(job: str, target: Any) -> str:
    error = target.get("lastError") or "no error yet"
    return f"{job} {target.get('scrapeUrl')} is {target.get('health')} ({error})"


def _labels(item: Any) -> Labels:
    return {str(k): str(v) for k, v in dict(item.get("metric", {})).items()}


def _utc(instant: float) -> datetime:
    return datetime.fromtimestamp(instant, UTC)


def _reason(exc: Exception) -> str:
    text = str(exc)
    match = re.search(r"\{.*\}", text)
    if match:
        try:
            return str(json.loads(match.group(0)).get("error", text))
        except ValueError:
            pass
    return text
