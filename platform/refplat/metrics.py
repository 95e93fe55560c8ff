"""Prometheus metrics of each process, each on its own registry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def metrics_handler(
    registry: CollectorRegistry,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler serving ``registry`` in the Prometheus text format."""

    async def handle(_request: web.Request) -> web.Response:
        body = generate_latest(registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return handle


class ApiMetrics:
    """Metrics of one api replica."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "refplat_api_requests",
            "API requests by method, route template and status code.",
            ["method", "route", "code"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "refplat_api_request_duration_seconds",
            "API request duration by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.up = Gauge("refplat_api_up", "1 while the api serves.", registry=self.registry)
        self.up.set(1)
        self.rate_limited = Counter(
            "refplat_api_rate_limited",
            "Requests refused with 429 by the limit of their token or session.",
            ["scope"],
            registry=self.registry,
        )
        self.quota_rejections = Counter(
            "refplat_api_quota_rejections",
            "World-file writes refused with 507 by their session's disk quota.",
            registry=self.registry,
        )


class ControllerMetrics:
    """Metrics of one controller replica."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.is_leader = Gauge(
            "refplat_controller_is_leader", "1 while this controller holds the lease.", registry=r
        )
        self.epoch = Gauge(
            "refplat_controller_leader_epoch",
            "Fencing epoch of this controller's lease (0 when not leader).",
            registry=r,
        )
        self.reconciles = Counter(
            "refplat_controller_reconciles", "Completed reconcile passes.", registry=r
        )
        self.last_reconcile = Gauge(
            "refplat_controller_last_reconcile_timestamp_seconds",
            "POSIX time of the last completed reconcile pass.",
            registry=r,
        )
        self.first_reconcile = Gauge(
            "refplat_controller_leader_first_reconcile_timestamp_seconds",
            "POSIX time of the first completed reconcile of the current term (0 if not leader).",
            registry=r,
        )
        self.reconcile_errors = Counter(
            "refplat_controller_reconcile_errors", "Keys whose reconcile failed.", registry=r
        )


class AgentMetrics:
    """Metrics of one node agent."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.game_servers = Gauge(
            "refplat_agent_game_servers", "Game-server listeners open.", registry=self.registry
        )
        self.heartbeats = Counter(
            "refplat_agent_heartbeats", "Heartbeats written to Redis.", registry=self.registry
        )
