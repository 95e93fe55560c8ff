"""Host layouts of the local target: regions and where Redis runs, read from a data file.

A profile names its layout (``topology.layout``, a file in ``profiles/topologies/``). Without
regions (``one-region.yaml``) hosts are named as they always were (``api-1``, ``lb``,
``agent-1``, ``redis``...). With regions, each region runs the profile's per-region counts under
prefixed names (``eu-api-1``, ``eu-lb``, ``eu-controller-1``, ``eu-agent-1``, ``eu-redis-1``,
``us-sentinel-2``), a global balancer on host ``lb`` fronts the regions' balancers, and ``ops``
holds the observability stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.config._tree import TreeBuilder
from harness.util.errors import ConfigError
from harness.util.yamlsrc import load_yaml

REDIS_ROLES = ("primary", "replica")
LOST_SESSION_POLICIES = ("end", "replace")


@dataclass(frozen=True)
class RegionSpec:
    """One region: its name (a host-name prefix), the Redis servers and Sentinels it hosts."""

    name: str = ""
    redis: tuple[str, ...] = field(default=(), metadata={"choices": REDIS_ROLES})
    sentinels: int = field(default=0, metadata={"minimum": 0})


@dataclass(frozen=True)
class LayoutFile:
    """The content of a layout file."""

    name: str = ""
    description: str = ""
    regions: tuple[RegionSpec, ...] = ()
    # What happens to a session whose server's node was lost (refplat's --lost-session-policy).
    lost_sessions: str = field(default="end", metadata={"choices": LOST_SESSION_POLICIES})


@dataclass(frozen=True)
class Layout:
    """A checked layout: regions in order (none: one unnamed region)."""

    name: str = "one-region"
    regions: tuple[RegionSpec, ...] = ()
    lost_sessions: str = "end"

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions) or ("",)

    @property
    def redis_replicas(self) -> int:
        return sum(r.redis.count("replica") for r in self.regions)

    @property
    def redis_sentinels(self) -> int:
        return sum(r.sentinels for r in self.regions)

    def redis_hosts(self) -> list[tuple[str, str]]:
        """``(name, region)`` of each Redis server, the primary first."""
        primary: list[tuple[str, str]] = []
        replicas: list[tuple[str, str]] = []
        for region in self.regions:
            for i, role in enumerate(region.redis, start=1):
                (primary if role == "primary" else replicas).append(
                    (f"{region.name}-redis-{i}", region.name)
                )
        return [*primary, *replicas]

    def sentinel_hosts(self) -> list[tuple[str, str]]:
        """``(name, region)`` of each Sentinel."""
        return [
            (f"{region.name}-sentinel-{i}", region.name)
            for region in self.regions
            for i in range(1, region.sentinels + 1)
        ]


ONE_REGION = Layout()


def load_layout(path: Path, *, repo_root: Path) -> Layout:
    """Read and check a layout file; a ConfigError names the file, the line and the fix."""
    full = path if path.is_absolute() else repo_root / path
    source = load_yaml(full, origin=str(path))
    origins = {p: f"{source.origin}:{line}" for p, line in source.lines.items()}
    origins.setdefault((), f"{source.origin}:1")
    builder = TreeBuilder(origins=origins, root=repo_root)
    built = builder.build(LayoutFile, source.data)
    problems = list(builder.problems)
    if built is not None:
        problems += _problems(built, builder)
    if problems or built is None:
        raise ConfigError(problems or [f"{path}: not a valid layout file."])
    return Layout(
        name=built.name or path.stem, regions=built.regions, lost_sessions=built.lost_sessions
    )


def _problems(layout: LayoutFile, builder: TreeBuilder) -> list[str]:
    problems: list[str] = []

    def say(where: tuple[str | int, ...], text: str) -> None:
        problems.append(f"{builder.origin_of(where)}: {text}")

    seen: set[str] = set()
    for i, region in enumerate(layout.regions):
        if not region.name.isalnum() or not region.name.islower():
            say(("regions", i, "name"), "a region needs a short lowercase name (eu, us, ap1).")
        if region.name in seen:
            say(("regions", i, "name"), f"region {region.name!r} is named twice; rename one.")
        seen.add(region.name)
    if layout.regions:
        primaries = sum(r.redis.count("primary") for r in layout.regions)
        if primaries != 1:
            say(("regions",), f"exactly one region must hold the Redis primary, not {primaries}.")
        sentinels = sum(r.sentinels for r in layout.regions)
        replicas = sum(r.redis.count("replica") for r in layout.regions)
        if sentinels and not replicas:
            say(("regions",), "Sentinels need a Redis replica to promote; add one.")
    return problems
