"""run.json is the machine contract: its keys, its instants, its round trip, its version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.model import (
    ExitCode,
    FaultRecord,
    LoadSummary,
    PhaseRecord,
    RunRecord,
    SloResult,
    Verdict,
    Window,
)
from harness.report import read_run_json, run_to_json, write_run_json
from harness.util.errors import ConfigError

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z

RUN = RunRecord(
    run_id="20260101-000000-abcd",
    profile="smoke",
    target="local",
    started_at=START,
    ended_at=START + 75.5,
    verdict=Verdict.FAIL,
    exit_code=ExitCode.FAIL,
    slos=(
        SloResult(
            name="api-availability",
            verdict=Verdict.PASS,
            value=1.0,
            objective=0.999,
            comparator=">=",
            window=Window("run", START + 5, START + 67),
            detail="62 of 62 probes succeeded (100.000 %); objective ≥ 99.900 %",
            query='sum(sum_over_time(probe_success{job="probe-api"}[62s]))',
        ),
        SloResult(
            name="controller-failover",
            verdict=Verdict.FAIL,
            value=None,
            objective=30.0,
            comparator="<=",
            window=Window("controller-leader-kill", START + 30, START + 50),
            detail="not recovered",
            query="max(refplat_controller_leader_first_reconcile_timestamp_seconds)",
        ),
    ),
    faults=(
        FaultRecord(
            name="controller-leader-kill",
            experiment="experiments/controller-leader-kill.yaml",
            injected_at=START + 30,
            recovered_at=None,
            status=Verdict.FAIL,
            detail="no new leader",
        ),
    ),
    phases=(PhaseRecord("baseline", START + 5, START + 30),),
    load=LoadSummary(
        requests=1200, failures=3, p50_ms=12.0, p99_ms=80.0, rps=20.0,
        by_name={"GET /servers": {"requests": 600.0}},
    ),
    artifacts={"junit": "junit.xml"},
    errors=("locust exited early",),
)  # fmt: skip


def test_the_document_has_every_contract_key() -> None:
    expected = {
        "schema_version", "run_id", "profile", "target", "started_at", "ended_at", "duration_s",
        "verdict", "exit_code", "slos", "faults", "phases", "load", "artifacts", "errors",
    }  # fmt: skip
    assert expected == set(run_to_json(RUN))


def test_instants_are_iso_8601_utc_and_durations_are_seconds() -> None:
    document = run_to_json(RUN)

    expected = ("2026-01-01T00:00:00.000Z", "2026-01-01T00:01:15.500Z", 75.5, "FAIL", 1)
    actual = (
        document["started_at"],
        document["ended_at"],
        document["duration_s"],
        document["verdict"],
        document["exit_code"],
    )
    assert expected == actual


def test_slos_carry_their_window_and_query() -> None:
    slo = run_to_json(RUN)["slos"][1]

    expected = {
        "name": "controller-failover",
        "verdict": "FAIL",
        "value": None,
        "objective": 30.0,
        "comparator": "<=",
        "severity": "gate",
        "window": {
            "name": "controller-leader-kill",
            "start": "2026-01-01T00:00:30.000Z",
            "end": "2026-01-01T00:00:50.000Z",
        },
        "detail": "not recovered",
        "query": "max(refplat_controller_leader_first_reconcile_timestamp_seconds)",
    }
    assert expected == slo


def test_a_fault_that_never_recovered_has_null_recovery() -> None:
    fault = run_to_json(RUN)["faults"][0]

    assert (None, None, "2026-01-01T00:00:30.000Z") == (
        fault["recovered_at"],
        fault["recovery_s"],
        fault["injected_at"],
    )


def test_writing_then_reading_gives_back_the_same_document(tmp_path: Path) -> None:
    path = tmp_path / "reports/run-1/run.json"

    write_run_json(RUN, path)

    assert json.loads(json.dumps(run_to_json(RUN))) == read_run_json(path)


def test_a_run_without_load_writes_null() -> None:
    run = RunRecord("r", "smoke", "local", START, START + 1, Verdict.INVALID, ExitCode.INFRA)

    assert run_to_json(run)["load"] is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param('{"schema_version": 2}', "schema_version is 2", id="newer version"),
        pytest.param("[]", "schema_version is None", id="not an object"),
        pytest.param("{", "cannot read it as JSON", id="not JSON"),
        pytest.param('{"schema_version": 1}', "missing keys", id="missing keys"),
    ],
)
def test_reading_rejects_what_it_cannot_read(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "run.json"
    path.write_text(content)

    with pytest.raises(ConfigError, match=message):
        read_run_json(path)
