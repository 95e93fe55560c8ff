"""The run's indicator series, saved from Prometheus before the target goes away.

``series.json`` holds, for each panel, the range query results over the run at the scrape
resolution, so reports (the HTML page's plots) can be rendered later from files alone, with the
fault windows of ``run.json`` shaded over them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.drivers.prometheus import PrometheusClient
from harness.model import Window
from harness.util.errors import DriverError

log = logging.getLogger(__name__)

RATE = "5s"


@dataclass(frozen=True)
class Panel:
    """One plot: a title, a unit and the queries drawn on it (each a legend label and PromQL)."""

    name: str
    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]


PANELS = (
    Panel(
        "api-availability",
        "API probe success through the load balancer",
        "ratio",
        (("probe_success", 'min(probe_success{job="probe-api"})'),),
    ),
    Panel(
        "api-latency",
        "API request latency",
        "seconds",
        tuple(
            (
                f"p{q}",
                f"histogram_quantile(0.{q}, sum by (le) "
                f"(rate(refplat_api_request_duration_seconds_bucket[{RATE}])))",
            )
            for q in ("50", "99")
        ),
    ),
    Panel(
        "api-requests",
        "API requests per second by status code",
        "req/s",
        (("{code}", f"sum by (code) (rate(refplat_api_requests_total[{RATE}]))"),),
    ),
    Panel(
        "gameserver-probes",
        "Game servers answering TCP probes",
        "servers",
        (("answering", 'sum(probe_success{job="probe-gameservers"})'),),
    ),
    Panel(
        "controller-epoch",
        "Controller leader epoch (fencing token)",
        "epoch",
        (("epoch", "max(refplat_controller_leader_epoch)"),),
    ),
)


def save_series(prom: PrometheusClient, window: Window, path: Path, *, step_s: float) -> None:
    """Query every panel over ``window`` and write ``series.json``; a failed query is noted."""
    panels: list[dict[str, Any]] = []
    for panel in PANELS:
        series: list[dict[str, Any]] = []
        for label, query in panel.queries:
            try:
                found = prom.range(query, start=window.start, end=window.end, step_s=step_s)
            except DriverError as exc:
                log.warning("series %s: %s", panel.name, exc)
                series.append({"label": label, "query": query, "error": str(exc), "points": []})
                continue
            series += [
                {
                    "label": label.format(**labels) if "{" in label else label,
                    "query": query,
                    "points": points,
                }
                for labels, points in found
            ]
        panels.append(
            {"name": panel.name, "title": panel.title, "unit": panel.unit, "series": series}
        )
    data = {
        "window": {"start": window.start, "end": window.end},
        "step_s": step_s,
        "panels": panels,
    }
    path.write_text(json.dumps(data))
