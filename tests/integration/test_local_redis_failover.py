"""The redis-primary-failover experiment: Sentinel promotes a replica, nothing acknowledged lost.

The local target runs a Redis primary, replicas and three Sentinels (profile local-redis); the
experiment SIGKILLs the primary the Sentinels report, and the rollback restarts it as a replica.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from harness.model import Endpoints
from harness.util.http import request
from tests.integration.conftest import only_run, run_harness

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
# Short holds and a small platform (two API replicas: with one, a single slow health check
# under load empties the balancer; the Redis set stays as the profile has it).
SHORT = [
    f"--set={key}={value}"
    for key, value in {
        "phases.warmup_s": 1,
        "phases.baseline_s": 2,
        "phases.recovery_s": 3,
        "topology.controller_replicas": 1,
        "topology.node_agents": 1,
    }.items()
]


def activities(journal: dict[str, Any], part: str) -> dict[str, Any]:
    """Each activity's output in the journal's ``run`` or ``rollbacks``, by name."""
    return {r["activity"]["name"]: r.get("output") for r in journal[part]}


def hypothesis_after(journal: dict[str, Any]) -> dict[str, Any]:
    return {p["activity"]["name"]: p["output"] for p in journal["steady_states"]["after"]["probes"]}


def leftovers(directory: Path) -> str:
    found = subprocess.run(["pgrep", "-af", str(directory)], capture_output=True, text=True)
    return found.stdout


def primary_per_sentinel(endpoints: Endpoints) -> set[str]:
    answers = set()
    for where in endpoints.extra["redis_sentinels"].split(","):
        host, _, port = where.rpartition(":")
        with redis.Redis(host=host, port=int(port), socket_timeout=2, decode_responses=True) as s:
            address = s.sentinel_get_master_addr_by_name(endpoints.extra["redis_master"])
        answers.add(f"{address[0]}:{address[1]}")
    return answers


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_certify_kills_the_primary_sentinel_fails_over_and_no_acknowledged_session_is_lost(
    workdir: Path,
) -> None:
    result = run_harness("certify", "--profile", "local-redis", *SHORT, cwd=workdir)

    assert 0 == result.returncode, result.stdout + result.stderr[-4000:]
    run_dir, data = only_run(workdir / "reports")
    (fault,) = data["faults"]
    assert ("redis-primary-kill", "PASS") == (fault["name"], fault["status"])
    journal = json.loads((run_dir / "chaos" / "redis-primary-failover.journal.json").read_text())
    method, rollbacks = activities(journal, "run"), activities(journal, "rollbacks")
    killed = method["kill-redis-primary"]
    assert method["sentinel-primary-changed"] is True
    assert method["sentinel-primary-after-failover"] not in ("", killed["killed"])
    (restarted,) = rollbacks["restart-old-primary"]
    assert killed["killed"] == restarted["name"]
    assert killed["pid"] != restarted["pid"]
    acknowledged = method["allocate-acknowledged-sessions"]
    assert 2 == len(acknowledged)
    assert sorted(acknowledged) == sorted(rollbacks["end-acknowledged-sessions"])
    assert hypothesis_after(journal)["acknowledged-sessions-survive"] is True
    verdicts = {s["name"]: s["verdict"] for s in data["slos"]}
    assert "PASS" == verdicts["sessions-preserved"]
    assert "PASS" == verdicts["api-mttr-redis-failover"]
    # The restarted Redis is no child of the supervisor: teardown stopped it all the same.
    assert "" == leftovers(workdir)


def test_plain_chaos_run_fails_over_a_target_brought_up_by_harness(workdir: Path) -> None:
    up = run_harness("up", "--profile", "local-redis", *SHORT, cwd=workdir)
    try:
        assert 0 == up.returncode, up.stdout + up.stderr[-3000:]
        endpoints = Endpoints.read(workdir / ".harness" / "target.json")
        experiment = "experiments/redis-primary-failover.yaml"
        chaos = subprocess.run(
            [str(BIN / "chaos"), "run", "--journal-path", "journal.json", experiment],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert 0 == chaos.returncode, chaos.stdout + chaos.stderr[-3000:]
        journal = json.loads((workdir / "journal.json").read_text())
        assert ("completed", False) == (journal["status"], journal["deviated"])
        method = activities(journal, "run")
        killed = method["kill-redis-primary"]

        # The fault was real: the killed pid is gone, and every Sentinel names another primary.
        assert not pid_exists(killed["pid"])
        (primary,) = primary_per_sentinel(endpoints)
        assert primary != killed["address"]
        # No acknowledged session was lost: each still exists, ended only by the rollback.
        admin = endpoints.admin_token()
        for sid in method["allocate-acknowledged-sessions"]:
            resp = request(
                "GET", f"{endpoints.api_url}/v1/sessions/{sid}", timeout_s=5, token=admin
            )
            assert (200, "Completed") == (resp.status, resp.json().get("reason")), resp.body
    finally:
        down = run_harness("down", cwd=workdir)
    assert 0 == down.returncode, down.stderr
    assert "" == leftovers(workdir)
