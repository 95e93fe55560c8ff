"""Partitions between test hosts, cut with nftables inside the hosts' network namespaces.

A partition adds the table ``inet harness_partition`` to each host of one side, dropping what
it receives from and sends to the other side (``one_way``: only what it sends). The action
holds the partition for ``duration_s`` and heals it itself; ``heal_all`` is the rollback.
Only a target brought up with ``topology.network=netns`` has hosts to cut between.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from harness.chaos import _target
from harness.chaos._target import ActivityFailed
from harness.model import Endpoints, HostInfo
from harness.util.errors import ConfigError

__all__ = ["heal_all", "partition_hosts"]

TABLE = "harness_partition"
MAX_PARTITION_S = 300.0
NFT_TIMEOUT_S = 10.0


def partition_hosts(
    target_file: str = "",
    *,
    hosts: list[str] | None = None,
    from_hosts: list[str] | None = None,
    one_way: bool = False,
    duration_s: float = 10.0,
    fault_name: str = "partition",
) -> dict[str, Any]:
    """Cut ``hosts`` off from ``from_hosts`` for ``duration_s`` seconds, then heal.

    Host names are those of the target (``api-1``, ``lb``, ``redis``, ``controller-2``,
    ``agent-3``, ``ops``...). The fault's instant is recorded on the run's timeline when the
    rules are in place, and the heal when they are gone.
    """
    if not 0 < duration_s <= MAX_PARTITION_S:
        raise ActivityFailed(f"duration_s must be in (0, {MAX_PARTITION_S:g}], not {duration_s}")
    endpoints = _target.load(target_file)
    side = _hosts(endpoints, hosts or [])
    other = _hosts(endpoints, from_hosts or [])
    if not side or not other:
        raise ActivityFailed("name the hosts on both sides: hosts=[...] and from_hosts=[...]")
    addresses = ", ".join(h.address for h in other)
    for host in side:
        _nft(host, _ruleset(addresses, one_way=one_way))
    names = f"{', '.join(h.name for h in side)} | {', '.join(h.name for h in other)}"
    timeline = _target.timeline(endpoints)
    event = timeline.append(
        {
            "kind": "fault",
            "name": fault_name,
            "event": "injected",
            "target": side[0].name,
            "detail": f"{'one-way ' if one_way else ''}partition {names}",
        }
    )
    try:
        time.sleep(duration_s)
    finally:
        for host in side:
            _delete_table(host)
        timeline.append(
            {"kind": "fault", "name": fault_name, "event": "healed", "target": side[0].name}
        )
    return {
        "partitioned": [h.name for h in side],
        "from": [h.name for h in other],
        "at": event["at"],
        "healed_after_s": duration_s,
    }


def heal_all(target_file: str = "") -> list[str]:
    """Remove every partition from every host of the target; return the hosts healed."""
    endpoints = _target.load(target_file)
    return [h.name for h in endpoints.hosts if _delete_table(h)]


def _hosts(endpoints: Endpoints, names: list[str]) -> list[HostInfo]:
    try:
        return [endpoints.host(name) for name in names]
    except ConfigError as exc:  # it names the hosts the target has
        raise ActivityFailed(str(exc)) from None


def _ruleset(addresses: str, *, one_way: bool) -> str:
    lines = [
        f"table inet {TABLE} {{",
        "  chain output {",
        "    type filter hook output priority 0; policy accept;",
        f"    ip daddr {{ {addresses} }} drop",
        "  }",
    ]
    if not one_way:
        lines += [
            "  chain input {",
            "    type filter hook input priority 0; policy accept;",
            f"    ip saddr {{ {addresses} }} drop",
            "  }",
        ]
    return "\n".join([*lines, "}", ""])


def _nft(host: HostInfo, script: str) -> None:
    out = subprocess.run(
        ["ip", "netns", "exec", host.namespace, "nft", "-f", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=NFT_TIMEOUT_S,
    )
    if out.returncode != 0:
        raise ActivityFailed(f"nft on host {host.name} refused the partition: {out.stderr}")


def _delete_table(host: HostInfo) -> bool:
    out = subprocess.run(
        ["ip", "netns", "exec", host.namespace, "nft", "delete", "table", "inet", TABLE],
        capture_output=True,
        text=True,
        timeout=NFT_TIMEOUT_S,
    )
    return out.returncode == 0
