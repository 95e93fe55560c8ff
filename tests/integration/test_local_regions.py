"""Two regions on network namespaces, and the region-outage experiment (root only).

The local-regions profile lays hosts out per profiles/topologies/two-regions.yaml: eu and us
each with API replicas behind their own balancer, a controller and node agents, a global
balancer in front, Redis primary in eu with replicas in both, Sentinels in both. The experiment
cuts eu off with nftables; us must keep serving, take over Redis and eu's sessions, and eu must
come back into rotation after the heal.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.targets import netns_supported
from tests.integration.conftest import only_run, run_harness

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not netns_supported(), reason="network namespaces need root, ip and nft"),
]

SHORT = [
    f"--set={key}={value}"
    for key, value in {"phases.warmup_s": 1, "phases.baseline_s": 2, "phases.recovery_s": 3}.items()
]


def outputs(journal: dict[str, Any]) -> dict[str, Any]:
    return {r["activity"]["name"]: r.get("output") for r in journal["run"]}


def namespaces(tag: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return [line.split()[0] for line in out.stdout.splitlines() if tag in line]


def test_losing_a_whole_region_keeps_the_other_serving_and_moves_its_sessions(
    workdir: Path,
) -> None:
    result = run_harness("certify", "--profile", "local-regions", *SHORT, cwd=workdir)

    assert 0 == result.returncode, result.stdout + result.stderr[-4000:]
    run_dir, data = only_run(workdir / "reports")
    (fault,) = data["faults"]
    assert ("region-outage", "PASS") == (fault["name"], fault["status"])
    journal = json.loads((run_dir / "chaos" / "region-outage.journal.json").read_text())
    assert ("completed", False) == (journal["status"], journal["deviated"])
    method = outputs(journal)
    outage = method["cut-region-eu-off"]
    # The cut was real: a replica of eu that answered before timed out from outside.
    assert "timed out" in outage["cut"]
    assert {"eu-lb", "eu-redis-1", "eu-agent-1", "eu-controller-1"} <= set(outage["hosts"])
    assert not any(h.startswith("us-") or h in ("lb", "ops") for h in outage["hosts"])
    # eu's sessions were moved to us while eu was out, and eu came back after the heal.
    assert outage["sessions_noted"] >= 1
    assert outage["replaced_after_s"] is not None
    assert outage["failed_back_after_s"] is not None
    # Sentinel promoted a replica in us: eu held the primary.
    assert method["redis-primary-after-outage"].startswith("us-redis-")
    after = {
        p["activity"]["name"]: p["output"] for p in journal["steady_states"]["after"]["probes"]
    }
    assert after["acknowledged-sessions-survive"] is True
    verdicts = {s["name"]: s["verdict"] for s in data["slos"]}
    assert "PASS" == verdicts["sessions-preserved"]
    events = [
        e["event"]
        for e in map(json.loads, (run_dir / "timeline.jsonl").read_text().splitlines())
        if e.get("name") == "region-outage"
    ]
    assert ["injected", "recovered", "healed", "failed-back"] == events
    # Every host of both regions had its own namespace; none is left after the run.
    target = json.loads((run_dir / "target.json").read_text())
    regions = {h["region"] for h in target["hosts"]}
    assert {"eu", "us", ""} == regions
    tag = target["hosts"][0]["namespace"].split("-")[1]
    assert [] == namespaces(f"gsh-{tag}-")
