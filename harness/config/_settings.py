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
    """How many of each reference-platform component the target deploys."""

    api_replicas: int = field(default=2, metadata={"minimum": 1})
    controller_replicas: int = field(default=2, metadata={"minimum": 1})
    node_agents: int = field(default=3, metadata={"minimum": 1})
    game_servers: int = field(default=10, metadata={"minimum": 0})
    network: str = field(default="loopback", metadata={"choices": NETWORKS})


@dataclass(frozen=True)
class RedisSettings:
    """How the target runs Redis: append-only file, fsync per ``fsync``.

    Certification profiles set ``always``, so a write Redis acknowledged survives its crash.
    """

    fsync: str = field(default="everysec", metadata={"choices": FSYNC_POLICIES})


@dataclass(frozen=True)
class LoadSettings:
    """The Locust load driven through the whole run."""

    locustfile: Path = field(default=Path("loadtests/tenant.py"), metadata={"exists": True})
    users: int = field(default=6, metadata={"minimum": 1})
    spawn_rate: float = field(default=3.0, metadata={"above": 0})


@dataclass(frozen=True)
class PhaseSettings:
    """How long each timed phase of the scenario lasts, in seconds."""

    warmup_s: float = field(default=5.0, metadata={"minimum": 0})
    baseline_s: float = field(default=10.0, metadata={"minimum": 0})
    recovery_s: float = field(default=10.0, metadata={"minimum": 0})


@dataclass(frozen=True)
class TimeoutSettings:
    """Upper bounds on waits, in seconds."""

    ready_s: float = field(default=60.0, metadata={"above": 0})


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
    load: LoadSettings = field(default_factory=LoadSettings)
    phases: PhaseSettings = field(default_factory=PhaseSettings)
    experiments: tuple[Path, ...] = field(default=(), metadata={"exists": True})
    slos: Path = field(default=Path("slos/smoke.yaml"), metadata={"exists": True})
    timeouts: TimeoutSettings = field(default_factory=TimeoutSettings)
