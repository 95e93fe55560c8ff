"""The nightly profile, shortened: its experiments run in rounds, so recoveries have a distribution.

It also stands for the local-faults profile (the same freeze and API replica kill, on one region),
which no test runs on its own: the frozen leader must be fenced, thawed by the rollback, and
the audit log stay intact across its resume.

The real nightly (`make nightly`) runs about eight minutes; here the same profile runs two rounds
with short phases, through the real `harness` command, against the real local target.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import only_run, run_harness

pytestmark = pytest.mark.integration

SHORT = {
    "phases.warmup_s": "3",
    "phases.baseline_s": "5",
    "phases.rounds": "2",
    "phases.settle_s": "3",
    "phases.recovery_s": "6",
}


@pytest.fixture(scope="module")
def nightly(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path, dict[str, Any]]:
    reports = tmp_path_factory.mktemp("reports")
    flags = [arg for key, value in SHORT.items() for arg in ("--set", f"{key}={value}")]
    result = run_harness(
        "certify", "--profile", "nightly", *flags, "--reports-dir", str(reports), timeout=600
    )
    run_dir, data = only_run(reports)
    return result, run_dir, data


def test_the_shortened_nightly_passes(nightly: Any) -> None:
    result, _, data = nightly
    assert 0 == result.returncode, result.stdout + result.stderr[-4000:]
    assert "PASS" == data["verdict"]


def test_each_experiment_runs_once_per_round_with_settling_between(nightly: Any) -> None:
    _, _, data = nightly
    phases = [p["name"] for p in data["phases"]]
    expected_faults = [
        "fault:controller-leader-kill",
        "fault:controller-leader-freeze",
        "fault:api-replica-kill",
        "fault:controller-leader-kill#2",
        "fault:controller-leader-freeze#2",
        "fault:api-replica-kill#2",
    ]
    assert expected_faults == [p for p in phases if p.startswith("fault:")]
    assert ["settle#1", "settle#2", "settle#3", "settle#4", "settle#5"] == [
        p for p in phases if p.startswith("settle")
    ]
    injected = [f["name"] for f in data["faults"] if f["injected_at"]]
    assert 2 == injected.count("controller-leader-kill")
    assert 2 == injected.count("api-replica-kill")
    assert set(data["load"]["phases"]) >= set(phases) - {"deploy", "evaluate"}


def test_each_injection_is_judged_and_the_failovers_have_a_distribution(nightly: Any) -> None:
    _, _, data = nightly
    kill = [s for s in data["slos"] if s["name"] == "controller-failover-kill"]
    windows = {s["window"]["name"] for s in kill}
    assert {"controller-leader-kill", "controller-leader-kill#2"} <= windows
    overall = [s for s in kill if s["stats"].get("count") == 2]
    assert overall, kill
    stats = overall[0]["stats"]
    assert stats["p50"] <= stats["p95"] <= stats["max"] <= 30
    per_injection = [s["value"] for s in kill if s["window"]["name"] in windows - {None}]
    assert max(v for v in per_injection if v is not None) == pytest.approx(stats["max"])


def test_every_frozen_leader_is_thawed_by_the_rollback_and_the_audit_log_stays_intact(
    nightly: Any,
) -> None:
    _, run_dir, data = nightly
    freezes = [f for f in data["faults"] if f["name"] == "controller-leader-freeze"]
    assert 2 == len(freezes)
    assert all(0 < f["recovery_s"] <= 30 for f in freezes), freezes
    journals = sorted((run_dir / "chaos").glob("controller-leader-freeze*.journal.json"))
    assert 2 == len(journals), journals
    for path in journals:
        journal = json.loads(path.read_text())
        assert ["thaw-every-process"] == [r["activity"]["name"] for r in journal["rollbacks"]]
        checks = [
            probe
            for hypothesis in ("steady_states",)
            for when in ("before", "after")
            for probe in journal[hypothesis][when]["probes"]
            if probe["activity"]["name"] == "audit-chain-valid"
        ]
        assert [True, True] == [c["output"] for c in checks], path
