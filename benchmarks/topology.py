"""Benchmark: the time to bring each profile's local topology up and down.

For each profile, ``harness up``'s own steps in-process (``bring_up``: deploy every process,
wait until ready, seed the tenant and the profile's game servers until all are Ready, hold two
sessions) and then ``bring_down``, with a private state directory, so a target another person
brought up with ``harness up`` is left alone. The certification profile runs 10,000 game
servers; ``--certification-servers`` (default 1,000) reduces it, and the figure's name says
with how many it ran.

    python benchmarks/topology.py --repeat 1
    python benchmarks/topology.py --profiles smoke nightly --certification-servers 10000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _figures import Figures

from harness.config import load_settings
from harness.engine.lifecycle import bring_down, bring_up
from harness.targets import LocalTopology

PROFILES = (
    "smoke",
    "local-netns",
    "local-redis",
    "local-catalogue",
    "local-regions",
    "nightly",
    "certification",
)


def _once(profile: str, overrides: list[str], figures: Figures, i: int) -> tuple[float, float, str]:
    settings = load_settings(profile, repo_root=Path.cwd(), env={}, overrides=overrides)
    topology = LocalTopology.from_settings(settings)
    servers = settings.topology.game_servers
    label = (
        f"{topology.api_replicas} api, {topology.controller_replicas} controllers, "
        f"{topology.node_agents} agents, {servers} servers, redis +{topology.redis_replicas} "
        f"replicas/{topology.redis_sentinels} sentinels, {topology.network}"
    )
    run_id = f"{figures.run_id}-{profile}-{i}"
    with tempfile.TemporaryDirectory(prefix="bench-topology-") as state:
        started = time.monotonic()
        try:
            bring_up(
                run_id=run_id,
                run_dir=figures.run_dir / run_id,
                state_dir=Path(state),
                topology=topology,
                servers=servers,
            )
            up = time.monotonic() - started
        finally:
            down_started = time.monotonic()
            bring_down(Path(state))
        return up, time.monotonic() - down_started, label


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--certification-servers", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    args = parser.parse_args()
    figures = Figures("topology", out=args.out)
    labels: dict[str, str] = {}
    for profile in args.profiles:
        if profile == "local-netns" and os.geteuid() != 0:
            print("local-netns: skipped (network namespaces need root)")
            continue
        overrides, name = [], profile
        if profile == "certification" and args.certification_servers != 10000:
            overrides = [f"topology.game_servers={args.certification_servers}"]
            name = f"certification at {args.certification_servers} servers"
        runs = [_once(profile, overrides, figures, i) for i in range(args.repeat)]
        labels[name] = runs[0][2]
        figures.add(f"{name} up", [r[0] for r in runs], meaning=f"harness up: {runs[0][2]}")
        figures.add(f"{name} down", [r[1] for r in runs], meaning="harness down")
    figures.save(repeat=args.repeat, topologies=labels)
    return 0


if __name__ == "__main__":
    sys.exit(main())
