"""A whole region lost: every host of it cut off from every other host, then failed back.

``region_outage`` is one action that does what a region outage game day does by hand: note the
sessions whose servers run in the region, cut the region off (nftables in each of its hosts'
namespaces, both directions, also from the root namespace where the load generator runs), watch
through the global balancer that the surviving region keeps serving and that those sessions are
re-placed on servers outside the region, heal, and wait until the region is back in rotation
(fail back). Every instant lands on the run's timeline: ``injected``, ``recovered`` (all noted
sessions re-placed), ``healed``, ``failed-back``. ``region_outage_recovered`` is the probe that
judges it afterwards (once); ``heal_all`` (in ``harness.chaos.network.actions``) is the rollback.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path
from typing import Any

from harness.chaos import _target
from harness.chaos._target import ActivityFailed
from harness.chaos.deploy._replicas import lb_states, parse_lb_states
from harness.chaos.network.actions import _delete_table, _nft, _ruleset
from harness.model import Endpoints, HostInfo
from harness.util.http import request

__all__ = ["region_outage", "region_outage_recovered"]

log = logging.getLogger(__name__)

FAULT = "region-outage"
MAX_OUTAGE_S = 300.0
POLL_S = 0.5
CUT_PROOF_TIMEOUT_S = 1.0
# The last outage's outcome, judged (and removed) by the probe that follows it.
OUTCOME_FILE = "region-outage-last.json"
PLACED = ("Allocated",)


def region_outage(
    target_file: str = "",
    *,
    region: str = "",
    duration_s: float = 30.0,
    failback_s: float = 60.0,
    fault_name: str = FAULT,
) -> dict[str, Any]:
    """Cut ``region`` off for ``duration_s`` seconds, then heal and wait for it to fail back.

    Returns what was seen: the sessions noted in the region, when they were re-placed, how
    many checks of the global balancer failed during the outage, and the fail-back time.
    """
    if not 0 < duration_s <= MAX_OUTAGE_S:
        raise ActivityFailed(f"duration_s must be in (0, {MAX_OUTAGE_S:g}], not {duration_s}")
    endpoints = _target.load(target_file)
    lost, others = _split(endpoints, region)
    root = endpoints.extra.get("fabric_root_address", "")
    addresses = ", ".join([h.address for h in others] + ([root] if root else []))
    agents = {h.name for h in lost if "-agent-" in h.name}
    token = endpoints.admin_token()
    noted = _sessions_on(endpoints, token, agents)
    timeline = _target.timeline(endpoints)
    for host in lost:
        _nft(host, _ruleset(addresses, one_way=False))
    try:
        proof = _prove_cut(endpoints, lost)
    except ActivityFailed:
        for host in lost:
            _delete_table(host)
        raise
    injected = timeline.append(
        {
            "kind": "fault",
            "name": fault_name,
            "event": "injected",
            "target": region,
            "detail": f"region {region} cut off: {', '.join(h.name for h in lost)}; {proof}",
        }
    )
    started = time.monotonic()
    replaced_after: float | None = None
    checks = failures = 0
    try:
        while (elapsed := time.monotonic() - started) < duration_s:
            checks += 1
            if not request("GET", f"{endpoints.api_url}/healthz", timeout_s=1.0).ok:
                failures += 1
            if replaced_after is None and _replaced(endpoints, token, noted, agents):
                replaced_after = elapsed
                timeline.append(
                    {
                        "kind": "fault",
                        "name": fault_name,
                        "event": "recovered",
                        "target": region,
                        "detail": f"{len(noted)} sessions of region {region} re-placed",
                    }
                )
            time.sleep(POLL_S)
    finally:
        for host in lost:
            _delete_table(host)
        timeline.append({"kind": "fault", "name": fault_name, "event": "healed", "target": region})
    failback = _await_failback(endpoints, region, lost, failback_s)
    if failback is not None:
        timeline.append(
            {"kind": "fault", "name": fault_name, "event": "failed-back", "target": region}
        )
    outcome = {
        "region": region,
        "hosts": [h.name for h in lost],
        "at": injected["at"],
        "cut": proof,
        "sessions_noted": len(noted),
        "replaced_after_s": None if replaced_after is None else round(replaced_after, 3),
        "global_checks": checks,
        "global_check_failures": failures,
        "failed_back_after_s": None if failback is None else round(failback, 3),
    }
    (Path(endpoints.run_dir) / OUTCOME_FILE).write_text(json.dumps(outcome, indent=2))
    return outcome


def region_outage_recovered(target_file: str = "", fault_name: str = FAULT) -> bool:
    """Judge the last region outage once: its noted sessions were re-placed while the region
    was out, and the region failed back after the heal. True when no outage awaits judgement
    (before the first, or before the next: an outage is judged by the probe after it, so a
    failed one does not fail the next experiment's hypothesis before its own fault)."""
    endpoints = _target.load(target_file)
    path = Path(endpoints.run_dir) / OUTCOME_FILE
    try:
        outcome = json.loads(path.read_text())
    except FileNotFoundError:
        return True
    path.unlink(missing_ok=True)
    missing = []
    if outcome.get("sessions_noted") and outcome.get("replaced_after_s") is None:
        missing.append(f"the {outcome['sessions_noted']} sessions noted in the region re-placed")
    if outcome.get("failed_back_after_s") is None:
        missing.append("the region back in rotation after the heal")
    if missing:
        log.warning("the last %s lacks %s", fault_name, " and ".join(missing))
    return not missing


def _split(endpoints: Endpoints, region: str) -> tuple[list[HostInfo], list[HostInfo]]:
    regions = sorted({h.region for h in endpoints.hosts if h.region})
    if not endpoints.hosts:
        raise ActivityFailed(
            "the target runs on loopback: a region outage needs hosts in network namespaces "
            "(topology.network: netns, as root)"
        )
    if region not in regions:
        raise ActivityFailed(
            f"the target has no region {region!r} (regions: {', '.join(regions) or 'none'}; "
            "choose a layout with regions, e.g. profiles/topologies/two-regions.yaml)"
        )
    if len(regions) < 2:
        raise ActivityFailed("a region outage needs a second region to survive it")
    lost = [h for h in endpoints.hosts if h.region == region]
    return lost, [h for h in endpoints.hosts if h.region != region]


def _prove_cut(endpoints: Endpoints, lost: list[HostInfo]) -> str:
    """Show the cut is real: a connection from here to an API replica of the region, which
    answered a moment ago, now times out (a partition drops packets; nothing refuses them)."""
    names = {h.name for h in lost}
    replica = next((p for p in endpoints.by_role("api") if p.host in names and p.url), None)
    if replica is None:
        return "no API replica in the region to prove the cut with"
    host, _, port = replica.url.removeprefix("http://").partition(":")
    started = time.monotonic()
    try:
        with socket.create_connection((host, int(port)), timeout=CUT_PROOF_TIMEOUT_S):
            pass
    except TimeoutError:
        waited = time.monotonic() - started
        return f"a connect to {replica.name} timed out after {waited:.1f} s"
    except OSError as exc:
        return f"a connect to {replica.name} failed: {exc}"
    raise ActivityFailed(
        f"the region is not cut off: {replica.name} at {host}:{port} still accepts connections"
    )


def _items(endpoints: Endpoints, path: str, token: str) -> list[dict[str, Any]]:
    resp = request("GET", f"{endpoints.api_url}{path}", timeout_s=2.0, token=token)
    if not resp.ok:
        raise ActivityFailed(f"GET {path} answered {resp.status}")
    items: list[dict[str, Any]] = resp.json().get("items", [])
    return items


def _sessions_on(endpoints: Endpoints, token: str, agents: set[str]) -> set[str]:
    """The Active sessions whose servers run on ``agents`` (the region's nodes)."""
    servers = _items(endpoints, "/v1/servers?state=Allocated&limit=500", token)
    return {str(s["session"]) for s in servers if s.get("node") in agents and s.get("session")}


def _replaced(endpoints: Endpoints, token: str, noted: set[str], agents: set[str]) -> bool:
    """Whether every noted session is on an Allocated server outside the region (or ended)."""
    try:
        servers = _items(endpoints, "/v1/servers?state=Allocated&limit=500", token)
        active = _items(endpoints, "/v1/sessions?state=Active&limit=500", token)
    except (ActivityFailed, OSError, ValueError):
        return False
    node_of = {s.get("session"): s.get("node") for s in servers}
    still = {str(s["id"]) for s in active} & noted
    return all(node_of.get(sid) not in (None, *agents) for sid in still)


def _await_failback(
    endpoints: Endpoints, region: str, lost: list[HostInfo], within_s: float
) -> float | None:
    """Seconds until the region is back: its balancer UP in the global one, its replicas UP in
    its own, its API replicas ready; None (logged) when that did not happen in ``within_s``."""
    started = time.monotonic()
    replicas = [p for p in endpoints.by_role("api") if p.host in {h.name for h in lost}]
    edge = endpoints.by_role("edge")
    while time.monotonic() - started < within_s:
        if _edge_state(edge[0].url if edge else "", region) == "UP":
            states = lb_states(endpoints)
            if all(states.get(p.name) == "UP" for p in replicas):
                return time.monotonic() - started
        time.sleep(POLL_S)
    log.warning("region %s did not fail back within %g s", region, within_s)
    return None


def _edge_state(stats_url: str, region: str) -> str:
    if not stats_url:
        return ""
    resp = request("GET", f"{stats_url}/metrics", timeout_s=1.0)
    return parse_lb_states(resp.body.decode(errors="replace")).get(region, "") if resp.ok else ""
