from __future__ import annotations

from pathlib import Path

from harness.engine._faults import fault_records, with_recoveries
from harness.engine.timeline import Timeline
from harness.model import FaultRecord, SloResult, Verdict, Window


def outcome(status: Verdict = Verdict.PASS) -> FaultRecord:
    return FaultRecord("kill", "experiments/kill.yaml", None, None, status, "experiment completed")


def timeline_with(tmp_path: Path, *events: dict[str, object]) -> Timeline:
    timeline = Timeline(tmp_path / "t.jsonl")
    timeline.append({"kind": "phase", "name": "fault:kill", "event": "start", "at": 10.0})
    for e in events:
        timeline.append(e)  # type: ignore[arg-type]
    timeline.append({"kind": "phase", "name": "fault:kill", "event": "end", "at": 20.0})
    return timeline


def test_a_fault_injected_inside_its_experiment_gets_the_instant(tmp_path: Path) -> None:
    timeline = timeline_with(
        tmp_path,
        {"kind": "fault", "name": "leader-kill", "event": "injected", "at": 12.0, "target": "c-1"},
    )
    (record,) = fault_records(timeline, [outcome()])
    assert ("leader-kill", 12.0, Verdict.PASS) == (record.name, record.injected_at, record.status)
    assert "on c-1" in record.detail


def test_an_experiment_that_injected_nothing_is_invalid(tmp_path: Path) -> None:
    (record,) = fault_records(timeline_with(tmp_path), [outcome()])
    assert Verdict.INVALID == record.status
    assert record.detail.startswith("the fault was not applied")


def test_a_fault_outside_the_experiment_phase_is_not_counted(tmp_path: Path) -> None:
    timeline = timeline_with(tmp_path)
    timeline.append({"kind": "fault", "name": "late", "event": "injected", "at": 25.0})
    (record,) = fault_records(timeline, [outcome()])
    assert Verdict.INVALID == record.status


def _result(name: str, value: float | None, start: float) -> SloResult:
    verdict = Verdict.PASS if value is not None else Verdict.FAIL
    return SloResult(name, verdict, value, 30.0, "<=", Window("kill", start, 60.0))


def test_recovery_comes_from_the_recovery_slo_over_that_fault() -> None:
    fault = FaultRecord("kill", "e.yaml", 12.0, None, Verdict.PASS, "done")
    results = [_result("failover", 4.5, 12.0), _result("sessions", 1.0, 12.0)]
    (record,) = with_recoveries([fault], results, {"failover"})
    assert 16.5 == record.recovered_at
    assert 4.5 == record.recovery_s


def test_a_fault_judged_without_recovery_says_it_did_not_recover() -> None:
    fault = FaultRecord("kill", "e.yaml", 12.0, None, Verdict.PASS, "done")
    (record,) = with_recoveries([fault], [_result("failover", None, 12.0)], {"failover"})
    assert record.recovered_at is None
    assert "not recovered; done" == record.detail


def test_a_fault_no_recovery_slo_covers_is_left_alone() -> None:
    fault = FaultRecord("kill", "e.yaml", 12.0, None, Verdict.PASS, "done")
    assert (fault,) == with_recoveries([fault], [_result("sessions", 1.0, 12.0)], {"failover"})


def test_a_skipped_experiment_keeps_its_skipped_records(tmp_path: Path) -> None:
    skipped = FaultRecord("cut", "experiments/cut.yaml", None, None, Verdict.SKIPPED, "lacks x")
    assert (skipped,) == fault_records(timeline_with(tmp_path), [skipped])
