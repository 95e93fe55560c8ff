"""The namespaced local target: each host its own network namespace, partitions cut with nft."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.targets import netns_supported
from tests.integration.conftest import only_run, run_harness

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not netns_supported(), reason="network namespaces need root, ip and nft"),
]


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def test_a_partitioned_replica_and_a_killed_leader_leave_every_slo_passing(tmp_path: Path) -> None:
    before = namespaces()
    result = run_harness("certify", "--profile", "local-netns", "--reports-dir", str(tmp_path))
    assert 0 == result.returncode, result.stdout + result.stderr[-4000:]
    run_dir, data = only_run(tmp_path)
    assert {"controller-leader-kill", "api-replica-partition"} == {
        f["name"] for f in data["faults"]
    }
    assert {"PASS"} == {s["verdict"] for s in data["slos"]}
    target = json.loads((run_dir / "target.json").read_text())
    assert "partition" in target["capabilities"]
    assert {h["address"].rsplit(".", 1)[0] for h in target["hosts"]} == {
        target["api_url"].split("//")[1].rsplit(".", 1)[0]
    }  # one /24 for every host
    assert before == namespaces()  # every namespace of the run is gone
