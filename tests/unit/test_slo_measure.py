"""Measuring through the PromQuery seam, replaying answers recorded from a real Prometheus.

The fixtures in fixtures/prometheus/ were recorded by fixtures/prometheus/record.py: three runs
(all good, all bad, no data) of slos/smoke.yaml plus a ratio SLO.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.drivers.prometheus import samples_from_result
from harness.model import FaultRecord, PhaseRecord, SloResult, Verdict, Window
from harness.slo import (
    Comparator,
    Indicator,
    IndicatorKind,
    Sample,
    Series,
    SloSpec,
    evaluate_slos,
    load_slo_file,
    range_text,
    render,
    scopes,
)
from harness.util.errors import DriverError

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "fixtures/prometheus"


class ReplayedPrometheus:
    """A PromQuery that answers only the queries it was recorded with.

    An instant answer is keyed by (query, time), a range answer by (query, start, end, step).
    """

    def __init__(self, answers: Sequence[Mapping[str, Any]]) -> None:
        self.answers = {
            (a["query"], float(a["time"])): a["response"] for a in answers if "time" in a
        }
        self.ranges = {
            (a["query"], float(a["start"]), float(a["end"]), float(a["step"])): a["response"]
            for a in answers
            if "step" in a
        }
        self.asked: list[tuple[str, float]] = []
        self.asked_ranges: list[tuple[str, float, float, float]] = []

    def instant(self, query: str, at: float) -> list[Sample]:
        self.asked.append((query, at))
        response = self.answers.get((query, at))
        if response is None:
            raise DriverError(f"no recorded answer for {query!r} at {at}")
        return list(samples_from_result(response["data"]["result"]))

    def range(self, query: str, *, start: float, end: float, step_s: float) -> list[Series]:
        self.asked.append((query, start))
        self.asked_ranges.append((query, start, end, step_s))
        response = self.ranges.get((query, start, end, step_s))
        if response is None:
            raise DriverError(f"no recorded range answer for {query!r} over [{start}, {end}]")
        return [
            (dict(item["metric"]), [(float(t), float(v)) for t, v in item["values"]])
            for item in response["data"]["result"]
        ]


def replay(name: str) -> dict[str, SloResult]:
    recording = json.loads((FIXTURES / f"{name}.json").read_text())
    specs = load_slo_file(REPO_ROOT / "slos/smoke.yaml") + load_slo_file(
        FIXTURES / "ratio-slo.yaml"
    )
    window = recording["run_window"]
    results = evaluate_slos(
        specs,
        prom=ReplayedPrometheus(recording["answers"]),
        run_window=Window(window["name"], window["start"], window["end"]),
        phases=[PhaseRecord(**phase) for phase in recording["phases"]],
        faults=[
            FaultRecord(**{**fault, "status": Verdict(fault["status"])})
            for fault in recording["faults"]
        ],
        external=recording["external"],
    )
    return {result.name: result for result in results}


@pytest.mark.parametrize(
    ("recording", "expected"),
    [
        # 63 probes cannot resolve the 62 ms error budget of 99.9 % over 62 s: INCONCLUSIVE.
        pytest.param("smoke-pass", {
            **dict.fromkeys(["controller-failover", "api-latency-p99", "sessions-preserved",
                             "api-success-ratio"], Verdict.PASS),
            "api-availability": Verdict.INCONCLUSIVE,
        }, id="good run"),
        pytest.param("smoke-fail", dict.fromkeys(
            ["api-availability", "controller-failover", "api-latency-p99", "sessions-preserved",
             "api-success-ratio"], Verdict.FAIL), id="bad run"),
        # The failover query ends in `or vector(0)`: with no controller left to report, the
        # absence of data reads as "not recovered" (FAIL), the rest as INVALID.
        pytest.param("smoke-nodata", {
            **dict.fromkeys(["api-availability", "api-latency-p99", "sessions-preserved",
                             "api-success-ratio"], Verdict.INVALID),
            "controller-failover": Verdict.FAIL,
        }, id="run without data"),
    ],
)  # fmt: skip
def test_recorded_runs_get_the_expected_verdicts(
    recording: str, expected: dict[str, Verdict]
) -> None:
    assert expected == {name: result.verdict for name, result in replay(recording).items()}


def test_probe_uptime_counts_every_probe_of_the_job() -> None:
    result = replay("smoke-fail")["api-availability"]

    assert result.detail.startswith("60 of 63 probes succeeded (95.238 %)"), result.detail
    assert result.detail.endswith(
        "error budget 0.1 %, 4,762 % spent (burn rate 47.6); objective ≥ 99.900 %"
    )


def test_recovery_time_is_measured_from_the_injection() -> None:
    result = replay("smoke-pass")["controller-failover"]

    assert result.value == pytest.approx(4.2)
    assert "controller-leader-kill" == result.window.name


def test_a_leader_that_never_reconciles_is_not_recovered() -> None:
    result = replay("smoke-fail")["controller-failover"]

    assert result.detail.startswith("not recovered: the latest sign of recovery")


def test_the_latency_query_uses_the_run_window_as_its_range() -> None:
    result = replay("smoke-pass")["api-latency-p99"]

    assert "[62s]" in result.query


EACH_FAULT = SloSpec(
    name="sessions-preserved",
    indicator=Indicator(kind=IndicatorKind.SESSIONS_PRESERVED),
    objective=1.0,
    comparator=Comparator.GE,
    window="each-fault",
)
RUN = Window("run", 100.0, 200.0)
PHASES = (PhaseRecord("baseline", 100.0, 130.0), PhaseRecord("fault", 130.0, 160.0))


def test_each_fault_without_a_fault_in_the_run_is_invalid() -> None:
    (result,) = evaluate_slos(
        [EACH_FAULT], prom=ReplayedPrometheus([]), run_window=RUN, phases=PHASES, faults=[],
        external={"sessions-preserved": 1.0},
    )  # fmt: skip

    assert (Verdict.INVALID, "no fault was applied in this run") == (
        result.verdict,
        result.detail.split(";")[0],
    )


def test_a_fault_window_runs_from_injection_to_the_end_of_its_phase() -> None:
    fault = FaultRecord("kill", "e.yaml", injected_at=140.0, recovered_at=None, status=Verdict.FAIL)

    (scope,) = scopes(EACH_FAULT, run_window=RUN, phases=PHASES, faults=[fault])

    assert Window("kill", 140.0, 160.0) == scope.window


def test_a_fault_without_an_injection_time_was_not_applied() -> None:
    fault = FaultRecord("kill", "e.yaml", injected_at=None, recovered_at=None, status=Verdict.FAIL)

    (scope,) = scopes(EACH_FAULT, run_window=RUN, phases=PHASES, faults=[fault])

    assert "the fault 'kill' was not applied (it has no injection time)" == scope.invalid


def test_a_phase_window_that_was_not_recorded_is_invalid() -> None:
    spec = SloSpec(
        name="s", indicator=EACH_FAULT.indicator, objective=1.0, comparator=Comparator.GE,
        window="soak",
    )  # fmt: skip

    (result,) = evaluate_slos(
        [spec], prom=ReplayedPrometheus([]), run_window=RUN, phases=PHASES, faults=[],
        external={"s": 1.0},
    )  # fmt: skip

    assert Verdict.INVALID == result.verdict


def test_a_failing_query_makes_the_slo_invalid_not_the_evaluation_crash() -> None:
    spec = SloSpec(
        name="lat", indicator=Indicator(kind=IndicatorKind.THRESHOLD, promql="x[$window]"),
        objective=1.0, comparator=Comparator.LE,
    )  # fmt: skip

    (result,) = evaluate_slos(
        [spec], prom=ReplayedPrometheus([]), run_window=RUN, phases=PHASES, faults=[],
        external={},
    )  # fmt: skip

    assert Verdict.INVALID == result.verdict
    assert "Prometheus could not answer" in result.detail


def test_external_values_per_fault_window_take_precedence() -> None:
    fault = FaultRecord(
        "kill", "e.yaml", injected_at=140.0, recovered_at=150.0, status=Verdict.PASS
    )

    (result,) = evaluate_slos(
        [EACH_FAULT], prom=ReplayedPrometheus([]), run_window=RUN, phases=PHASES, faults=[fault],
        external={"sessions-preserved": 1.0, "sessions-preserved@kill": 0.5},
    )  # fmt: skip

    assert (Verdict.FAIL, 0.5) == (result.verdict, result.value)


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        pytest.param(63.0, "63s", id="whole"),
        pytest.param(62.6, "63s", id="rounded"),
        pytest.param(0.2, "1s", id="at least one second"),
    ],
)
def test_window_placeholder_becomes_whole_seconds(duration: float, expected: str) -> None:
    window = Window("run", 0.0, duration)

    assert (expected, f"rate(x[{expected}])") == (
        range_text(window),
        render("rate(x[$window])", window),
    )
