from __future__ import annotations

from pathlib import Path

import pytest

from harness.engine.timeline import Timeline
from harness.model import PhaseRecord


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_phases_are_recorded_with_their_start_and_end(tmp_path: Path) -> None:
    timeline = Timeline(tmp_path / "t.jsonl", clock=FakeClock())
    with timeline.phase("baseline"):
        pass
    with timeline.phase("recovery"):
        pass
    assert [PhaseRecord("baseline", 1001.0, 1002.0), PhaseRecord("recovery", 1003.0, 1004.0)] == (
        timeline.phases()
    )


def test_a_phase_that_raises_still_ends(tmp_path: Path) -> None:
    timeline = Timeline(tmp_path / "t.jsonl", clock=FakeClock())
    with pytest.raises(RuntimeError), timeline.phase("fault:x"):
        raise RuntimeError("boom")
    assert ["fault:x"] == [p.name for p in timeline.phases()]


def test_faults_written_by_another_writer_are_read_back(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    Timeline(path).append({"kind": "fault", "name": "kill", "event": "injected", "at": 5.0})
    Timeline(path).append({"kind": "phase", "name": "p", "event": "start", "at": 4.0})
    assert [{"kind": "fault", "name": "kill", "event": "injected", "at": 5.0}] == (
        Timeline(path).faults()
    )


def test_a_missing_timeline_has_no_events(tmp_path: Path) -> None:
    assert [] == Timeline(tmp_path / "none.jsonl").events()
