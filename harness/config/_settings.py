"""The settings tree: what one run of the harness is configured with.

Every field has a default, so a profile file states only what differs. Field metadata carries the
checks the loader applies: ``minimum`` (inclusive), ``above`` (exclusive lower bound), ``choices``
and ``exists`` (a path that must exist relative to the repository root).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

TARGETS = ("local", "kube", "kind")
# loopback: every process on 127.0.0.1; netns: each host its own network namespace (root only),
# so partitions can be cut between hosts.
NETWORKS = ("loopback", "netns")
# Redis appendfsync: always (fsync before each write is acknowledged), everysec, never (Redis's
# "no", spelt so that YAML does not read it as false).
FSYNC_POLICIES = ("always", "everysec", "never")


@dataclass(frozen=True)
class TopologySettings:
    """How many of each reference-platform component the target deploys, and on which network;
    ``audit`` turns the platform's audit log on."""

    api_replicas: int = field(default=2, metadata={"minimum": 1})
    controller_replicas: int = field(default=2, metadata={"minimum": 1})
    node_agents: int = field(default=3, metadata={"minimum": 1})
    game_servers: int = field(default=10, metadata={"minimum": 0})
    network: str = field(default="loopback", metadata={"choices": NETWORKS})
    # Disk quota of each session's world files, MiB (the platform's default is 10 GiB).
    session_disk_quota_mib: int = field(default=10240, metadata={"minimum": 1})
    # The hosts' layout: regions and where Redis runs (a data file, see profiles/topologies/).
    # With regions, the counts above are per region.
    layout: Path = field(
        default=Path("profiles/topologies/one-region.yaml"), metadata={"exists": True}
    )
    # The platform's audit log: the target creates the run's key file and every API replica and
    # controller appends a sealed, hash-chained record per mutation to Redis (as in production),
    # offering the ``audit`` capability (the probe audit_chain_valid). Off by default: each
    # record is one more durable Redis write per mutation, which the perf profiles leave out.
    audit: bool = False


@dataclass(frozen=True)
class RedisSettings:
    """How the target runs Redis: append-only file, fsync per ``fsync``.

    Certification profiles set ``always``, so a write Redis acknowledged survives its crash.
    ``replicas`` replicas follow the primary, and every write the platform acknowledges waits
    (``WAIT``) for one of them; ``sentinels`` Redis Sentinels watch the primary and promote a
    replica when it dies (the ``redis-failover`` capability needs both). 0 and 0: one Redis.
    """

    fsync: str = field(default="everysec", metadata={"choices": FSYNC_POLICIES})
    replicas: int = field(default=0, metadata={"minimum": 0})
    sentinels: int = field(default=0, metadata={"minimum": 0})


@dataclass(frozen=True)
class ProbeSettings:
    """How densely the blackbox exporter probes the API through the load balancer.

    Uptime from probes can only resolve an error budget longer than the gap between probes:
    99.9 % over a 35 s run is a 35 ms budget, which needs 1,000 probes, about 30 a second.
    """

    api_per_second: int = field(default=40, metadata={"minimum": 1})
    # Game servers probed over TCP each second: all of them, or this many spread over them.
    gameservers: int = field(default=200, metadata={"minimum": 1})


@dataclass(frozen=True)
class LoadSettings:
    """The Locust load driven through the whole run."""

    locustfile: Path = field(default=Path("loadtests/tenant.py"), metadata={"exists": True})
    users: int = field(default=6, metadata={"minimum": 1})
    spawn_rate: float = field(default=3.0, metadata={"above": 0})
    # Locust worker processes under one master; 0: one per usable core (1: a single process).
    workers: int = field(default=0, metadata={"minimum": 0})
    # More Locust command-line arguments, verbatim (the locustfile's own options, a shape).
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class PhaseSettings:
    """How long each timed phase of the scenario lasts, in seconds."""

    warmup_s: float = field(default=5.0, metadata={"minimum": 0})
    baseline_s: float = field(default=10.0, metadata={"minimum": 0})
    # The experiments run ``rounds`` times in order, each after a ``settle_s`` phase under load
    # (none before the first): repeated injections give recovery times a distribution.
    rounds: int = field(default=1, metadata={"minimum": 1})
    settle_s: float = field(default=0.0, metadata={"minimum": 0})
    recovery_s: float = field(default=10.0, metadata={"minimum": 0})


@dataclass(frozen=True)
class TimeoutSettings:
    """Upper bounds on waits, in seconds."""

    ready_s: float = field(default=60.0, metadata={"above": 0})


# gate: a worsening against history fails the run; warn: it is reported only.
SEVERITIES = ("warn", "gate")


@dataclass(frozen=True)
class RegressionSettings:
    """How a run is compared with the last ``history`` runs of its profile and target.

    Each metric's baseline is its median over those runs; increases are relative (0.20 is
    +20 %) except ``failure_increase``, an absolute rise of the failed share of requests.
    """

    history: int = field(default=5, metadata={"minimum": 1})
    min_runs: int = field(default=3, metadata={"minimum": 1})
    p99_increase: float = field(default=0.20, metadata={"minimum": 0})
    failure_increase: float = field(default=0.01, metadata={"minimum": 0})
    recovery_increase: float = field(default=0.20, metadata={"minimum": 0})
    slo_change: float = field(default=0.20, metadata={"minimum": 0})
    severity: str = field(default="warn", metadata={"choices": SEVERITIES})


@dataclass(frozen=True)
class Settings:
    """One run's settings: defaults < profile file < ``HARNESS_*`` environment < flags.

    Paths are relative to the repository root, as written in the profile.
    """

    name: str = "default"
    description: str = ""
    target: str = field(default="local", metadata={"choices": TARGETS})
    topology: TopologySettings = field(default_factory=TopologySettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    probes: ProbeSettings = field(default_factory=ProbeSettings)
    load: LoadSettings = field(default_factory=LoadSettings)
    phases: PhaseSettings = field(default_factory=PhaseSettings)
    experiments: tuple[Path, ...] = field(default=(), metadata={"exists": True})
    slos: Path = field(default=Path("slos/smoke.yaml"), metadata={"exists": True})
    timeouts: TimeoutSettings = field(default_factory=TimeoutSettings)
    regression: RegressionSettings = field(default_factory=RegressionSettings)
