"""Prometheus metrics of each process, each on its own registry.

Names follow the Prometheus conventions (``promtool check metrics`` is clean): a unit suffix
(``_seconds``), counters exposed with ``_total`` (prometheus_client appends it), a HELP line
for every family, and every value of a closed label set present from the start (0 until it
happens).

The cluster-wide gauges (game servers, sessions and nodes by state, heartbeat age per node,
TTL-prune lag) are computed by the leader controller once per reconcile pass; a controller
that does not hold the lease exports no series of the labelled ones and 0 for the lag, so
``sum()`` and ``max()`` over all replicas need no join on ``refplat_controller_is_leader``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from refplat.model import GameServerState, NodeState, SessionState

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ALLOCATION_OUTCOMES = ("created", "existing", "none")
LEADER_EVENTS = ("acquired", "lost")
RECONCILE_ERROR_SCOPES = ("key", "pass")
QUEUE_STATES = ("due", "backoff")


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
        self.allocation_duration = Histogram(
            "refplat_api_allocation_duration_seconds",
            "Duration of the allocation script by outcome (created, existing, none).",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        for outcome in ALLOCATION_OUTCOMES:
            self.allocation_duration.labels(outcome=outcome)

    def observe_allocation(self, outcome: str, seconds: float) -> None:
        """Record one allocation that took ``seconds`` and ended with ``outcome``."""
        self.allocation_duration.labels(outcome=outcome).observe(seconds)


class ControllerMetrics:
    """Metrics of one controller replica."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.is_leader = Gauge(
            "refplat_controller_is_leader", "1 while this controller holds the lease.", registry=r
        )
        self.audit_archived = Counter(
            "refplat_controller_audit_archived_records",
            "Audit records moved from Redis into archive segments by this controller.",
            registry=r,
        )
        self.audit_archive_errors = Counter(
            "refplat_controller_audit_archive_errors",
            "Audit archive attempts that failed (verification, disk or Redis).",
            registry=r,
        )
        self.epoch = Gauge(
            "refplat_controller_leader_epoch",
            "Fencing epoch of this controller's lease (0 when not leader).",
            registry=r,
        )
        self.leader_changes = Counter(
            "refplat_controller_leader_changes",
            "Times this controller acquired or lost (or released) the lease.",
            ["event"],
            registry=r,
        )
        self.fencing_rejections = Counter(
            "refplat_controller_fencing_rejections",
            "Writes Redis refused because this controller's epoch no longer held the lease.",
            registry=r,
        )
        self.reconciles = Counter(
            "refplat_controller_reconciles", "Completed reconcile passes.", registry=r
        )
        self.reconcile_duration = Histogram(
            "refplat_controller_reconcile_duration_seconds",
            "Duration of one reconcile pass (completed, failed or fenced).",
            buckets=LATENCY_BUCKETS,
            registry=r,
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
            "refplat_controller_reconcile_errors",
            "Failed reconciles: of one key (it backs off) or of a whole pass.",
            ["scope"],
            registry=r,
        )
        self.work_queue_depth = Gauge(
            "refplat_controller_work_queue_depth",
            "Work keys of the last pass: due (reconciled in it) or waiting out a backoff.",
            ["state"],
            registry=r,
        )
        for event in LEADER_EVENTS:
            self.leader_changes.labels(event=event)
        for scope in RECONCILE_ERROR_SCOPES:
            self.reconcile_errors.labels(scope=scope)
        for state in QUEUE_STATES:
            self.work_queue_depth.labels(state=state)
        self.census = CensusMetrics(r)


@dataclass(frozen=True)
class Census:
    """Counts by state, heartbeat ages and the TTL-prune lag, at one instant."""

    servers: Mapping[GameServerState, int]
    sessions: Mapping[SessionState, int]
    nodes: Mapping[NodeState, int]
    heartbeat_age_s: Mapping[str, float]
    ttl_prune_lag_s: float


class CensusMetrics:
    """The cluster-wide gauges only the leader controller exports."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.game_servers = Gauge(
            "refplat_game_servers", "Game servers by state (leader only).", ["state"], registry=r
        )
        self.sessions = Gauge(
            "refplat_sessions", "Sessions by state (leader only).", ["state"], registry=r
        )
        self.nodes = Gauge("refplat_nodes", "Nodes by state (leader only).", ["state"], registry=r)
        self.heartbeat_age = Gauge(
            "refplat_node_heartbeat_age_seconds",
            "Seconds since each node's last heartbeat, by the Redis clock (leader only).",
            ["node"],
            registry=r,
        )
        self.ttl_prune_lag = Gauge(
            "refplat_controller_ttl_prune_lag_seconds",
            "How long the oldest due session had been past its expiry at the start of the "
            "last pass (0 when none, or when not leader).",
            registry=r,
        )

    def publish(self, census: Census) -> None:
        """Export one census; every state appears (0 when none), only current nodes do."""
        _set_all(self.game_servers, {s.value: census.servers.get(s, 0) for s in GameServerState})
        _set_all(self.sessions, {s.value: census.sessions.get(s, 0) for s in SessionState})
        _set_all(self.nodes, {s.value: census.nodes.get(s, 0) for s in NodeState})
        _set_all(self.heartbeat_age, census.heartbeat_age_s)
        self.ttl_prune_lag.set(census.ttl_prune_lag_s)

    def clear(self) -> None:
        """Export nothing stale: a controller that is not the leader has no census."""
        for gauge in (self.game_servers, self.sessions, self.nodes, self.heartbeat_age):
            gauge.clear()
        self.ttl_prune_lag.set(0)


def _set_all(gauge: Gauge, values: Mapping[str, float]) -> None:
    """Replace every series of a one-label gauge (no await in between, so no torn scrape)."""
    gauge.clear()
    for label, value in values.items():
        gauge.labels(label).set(value)


class AgentMetrics:
    """Metrics of one node agent."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.game_servers = Gauge(
            "refplat_agent_game_servers", "Game-server listeners open.", registry=r
        )
        self.heartbeats = Counter(
            "refplat_agent_heartbeats", "Heartbeats written to Redis.", registry=r
        )
        self.heartbeat_failures = Counter(
            "refplat_agent_heartbeat_failures",
            "Heartbeats that could not be written to Redis.",
            registry=r,
        )
        self.sync_errors = Counter(
            "refplat_agent_sync_errors",
            "Polls that failed to converge the local listeners.",
            registry=r,
        )
        self.status_requests = Counter(
            "refplat_agent_status_requests",
            "Server List Ping status requests answered by this agent's game servers.",
            registry=r,
        )
