"""run.json is the machine contract: its keys, its instants, its round trip, its version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.model import (
    AlertRecord,
    ExitCode,
    FaultRecord,
    LoadSummary,
    PhaseRecord,
    RunRecord,
    SloResult,
    Verdict,
    Window,
)
from harness.report import load_run_record, read_run_json, run_to_json, write_run_json
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
    alerts=(
        AlertRecord("RefplatApiReplicasLow", START + 31, START + 40.5,
                    {"alertname": "RefplatApiReplicasLow", "severity": "page"}),
        AlertRecord("RefplatControllerNoLeader", START + 32, None,
                    {"alertname": "RefplatControllerNoLeader", "severity": "page"}),
    ),
)  # fmt: skip


def test_the_document_has_every_contract_key() -> None:
    expected = {
        "schema_version", "run_id", "profile", "target", "started_at", "ended_at", "duration_s",
        "verdict", "exit_code", "slos", "faults", "phases", "load", "artifacts", "errors",
        "regressions", "alerts",
    }  # fmt: skip
    assert expected == set(run_to_json(RUN))


def test_alerts_list_name_instants_and_labels_and_null_while_firing() -> None:
    alerts = run_to_json(RUN)["alerts"]
    assert [("RefplatApiReplicasLow", "2026-01-01T00:00:31.000Z", "2026-01-01T00:00:40.500Z"),
            ("RefplatControllerNoLeader", "2026-01-01T00:00:32.000Z", None)] == [
        (a["name"], a["start"], a["end"]) for a in alerts
    ]  # fmt: skip
    assert {"alertname": "RefplatApiReplicasLow", "severity": "page"} == alerts[0]["labels"]


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
        "samples": 0,
        "stats": {},
        "unit": "",
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


# A record as the engine writes it: instants from time.time(), finer than the millisecond that
# run.json prints, durations computed from them.
T0 = 1_796_056_577.1245312
REALISTIC = RunRecord(
    run_id="20261130-163616-5821",
    profile="smoke",
    target="local",
    started_at=T0,
    ended_at=T0 + 47.3091234,
    verdict=Verdict.PASS,
    exit_code=ExitCode.PASS,
    slos=(
        SloResult(
            name="api-availability", verdict=Verdict.PASS, value=0.99952, objective=0.999,
            comparator=">=", window=Window("run", T0 + 10.9745, T0 + 44.0688123),
            detail="2,083 of 2,084 probes succeeded", query="sum(probe_success)", samples=2084,
            stats={"budget_s": 0.033, "burn_rate": 0.48},
        ),
        SloResult(
            name="controller-failover", verdict=Verdict.PASS, value=3.1738057136535645,
            objective=30.0, comparator="<=",
            window=Window("controller-leader-kill", T0 + 26.0431, T0 + 44.0688123),
            detail="recovered in 3.2 s", query="max(leader_seconds)", samples=1,
            stats={"p50": 3.1738057136535645, "p95": 3.1738057136535645},
        ),
    ),
    faults=(
        FaultRecord(
            name="controller-leader-kill", experiment="experiments/controller-leader-kill.yaml",
            injected_at=T0 + 26.0430661, recovered_at=T0 + 26.0430661 + 3.1738057136535645,
            status=Verdict.PASS, detail="on controller-2",
        ),
        FaultRecord("api-replica-kill", "experiments/api-replica-kill.yaml", None, None,
                    Verdict.SKIPPED, "needs partition"),
    ),
    phases=(
        PhaseRecord("deploy", T0 + 0.0004321, T0 + 5.4638765),
        PhaseRecord("baseline", T0 + 15.9748, T0 + 25.97535),
        PhaseRecord("fault:controller-leader-kill", T0 + 26.0036, T0 + 34.0681),
    ),
    load=LoadSummary(
        requests=589, failures=2, p50_ms=6.0, p99_ms=16.0, rps=18.243716557750254,
        by_name={"GET /v1/servers": {"requests": 117, "failures": 0, "p50_ms": 7.0}},
        by_phase={
            "deploy": LoadSummary(0, 0, None, None),
            "baseline": LoadSummary(183, 1, 6.0, 12.0, 18.3, {"GET /v1/servers": {"p99_ms": 12.0}}),
        },
    ),
    artifacts={"timeline": "timeline.jsonl", "journal:controller-leader-kill": "chaos/x.json"},
    errors=("sessions lost over the faults: s-1",),
)  # fmt: skip


def test_loading_gives_back_the_record_that_was_written(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_run_json(RUN, path)

    assert RUN == load_run_record(path)


def test_a_loaded_realistic_record_renders_the_same_document(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_run_json(REALISTIC, path)

    assert json.loads(path.read_text()) == run_to_json(load_run_record(path))


def test_loading_keeps_recovery_times_finer_than_the_printed_instants(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_run_json(REALISTIC, path)

    fault = load_run_record(path).faults[0]

    assert REALISTIC.faults[0].recovery_s == fault.recovery_s


def test_an_older_run_json_without_samples_and_stats_loads(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    write_run_json(RUN, path)
    document = json.loads(path.read_text())
    for slo in document["slos"]:
        del slo["samples"], slo["stats"]
    path.write_text(json.dumps(document))

    assert RUN == load_run_record(path)


def _damage(document: dict[str, Any], key: str, value: object) -> None:
    *parents, last = key.split(".")
    node: Any = document
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _MISSING:
        del node[last]
    else:
        node[last] = value


_MISSING = object()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        pytest.param("verdict", "MAYBE", "key 'verdict' should be one of PASS, FAIL,",
                     id="verdict"),
        pytest.param("exit_code", 7, "key 'exit_code' should be one of 0, 1, 2, 3, not 7",
                     id="exit code"),
        pytest.param("started_at", "yesterday", "key 'started_at' should be an ISO 8601 instant",
                     id="instant"),
        pytest.param("slos.0.window.start", 5, "key 'slos[0].window.start' should be an ISO",
                     id="window start"),
        pytest.param("slos.1.value", "3 s", "key 'slos[1].value' should be a number or null",
                     id="slo value"),
        pytest.param("faults.0.name", _MISSING, "key 'faults[0].name' is missing", id="fault name"),
        pytest.param("load.requests", "589", "key 'load.requests' should be an integer",
                     id="load requests"),
        pytest.param("load.phases.baseline.p99_ms", [], "key 'load.phases.baseline.p99_ms'",
                     id="phase load"),
        pytest.param("phases", {}, "key 'phases' should be a list of objects", id="phases"),
        pytest.param("errors", [1], "key 'errors' should be a list of strings", id="errors"),
    ],
)  # fmt: skip
def test_loading_names_the_file_and_the_damaged_key(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    path = tmp_path / "run.json"
    write_run_json(REALISTIC, path)
    document = json.loads(path.read_text())
    _damage(document, key, value)
    path.write_text(json.dumps(document))

    with pytest.raises(ConfigError) as caught:
        load_run_record(path)

    assert str(caught.value).startswith(f"{path}: {message}")
