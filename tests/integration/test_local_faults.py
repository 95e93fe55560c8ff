"""The local-faults profile: a frozen leader is fenced, an API replica dies behind HAProxy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import only_run, run_harness

pytestmark = pytest.mark.integration


def test_freeze_and_replica_kill_leave_every_slo_passing(tmp_path: Path) -> None:
    result = run_harness("certify", "--profile", "local-faults", "--reports-dir", str(tmp_path))
    assert 0 == result.returncode, result.stdout + result.stderr[-4000:]
    run_dir, data = only_run(tmp_path)
    faults = {f["name"]: f for f in data["faults"]}
    assert {"controller-leader-freeze", "api-replica-kill"} == set(faults)
    assert 0 < faults["controller-leader-freeze"]["recovery_s"] <= 30
    assert {"PASS"} == {s["verdict"] for s in data["slos"]}
    journal = json.loads((run_dir / "chaos" / "controller-leader-freeze.journal.json").read_text())
    assert ["thaw-every-process"] == [r["activity"]["name"] for r in journal["rollbacks"]]
