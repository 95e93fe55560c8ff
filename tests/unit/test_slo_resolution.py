"""INCONCLUSIVE when the samples cannot resolve the objective, replaying a real Prometheus.

The recordings in fixtures/prometheus/ (record.py, group "resolution") hold 35 s runs probed once
a second by one target (36 probes: too few for 99.9 %) and by forty (1,440 probes: enough), and
a run scraped every 15 s whose leader recovers 30 s after the kill.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.model import FaultRecord, PhaseRecord, SloResult, Verdict, Window
from harness.slo import (
    Comparator,
    Indicator,
    IndicatorKind,
    Measurement,
    Sample,
    Series,
    SloSpec,
    evaluate_slos,
    judge,
    load_slo_file,
    measure,
)
from harness.slo._resolution import parse_duration, seconds_text, unresolved
from harness.util.errors import ConfigError, DriverError
from tests.unit.test_slo_measure import ReplayedPrometheus as Replayed

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "fixtures/prometheus"
SLO_FILES = {
    "resolution-pass": "resolution-slos.yaml",
    "resolution-fail": "resolution-slos.yaml",
    "resolution-nodata": "resolution-slos.yaml",
    "resolution-coarse": "coarse-slos.yaml",
    "burn-long": "burn-slos.yaml",
}


def replay(
    name: str, *, scrape_interval_s: float | None = None, prom: Replayed | None = None
) -> dict[str, SloResult]:
    """Judge the recording ``name`` with its SLO file; the scrape interval as recorded."""
    recording = json.loads((FIXTURES / f"{name}.json").read_text())
    window = recording["run_window"]
    results = evaluate_slos(
        load_slo_file(FIXTURES / SLO_FILES[name]),
        prom=prom or Replayed(recording["answers"]),
        run_window=Window(window["name"], window["start"], window["end"]),
        phases=[PhaseRecord(**phase) for phase in recording["phases"]],
        faults=[
            FaultRecord(**{**fault, "status": Verdict(fault["status"])})
            for fault in recording["faults"]
        ],
        external=recording["external"],
        scrape_interval_s=scrape_interval_s or recording["scrape_interval_s"],
    )
    return {result.name: result for result in results}


def recorded_answers(name: str) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = json.loads((FIXTURES / f"{name}.json").read_text())["answers"]
    return answers


P, F, N, V = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.INVALID


@pytest.mark.parametrize(
    ("recording", "expected"),
    [
        pytest.param("resolution-pass", {
            "sparse-uptime": N, "dense-uptime": P, "dense-slices": P, "dense-slices-5s": P,
            "dense-slices-strict": N, "requests-strict": N, "requests-loose": P,
        }, id="all good: too few samples are inconclusive, enough pass"),
        pytest.param("resolution-fail", {
            "sparse-uptime": F, "dense-uptime": F, "dense-slices": F, "dense-slices-5s": F,
            "dense-slices-strict": F, "requests-strict": F, "requests-loose": P,
        }, id="a few failures: an observed breach fails however coarse"),
        pytest.param("resolution-nodata", dict.fromkeys([
            "sparse-uptime", "dense-uptime", "dense-slices", "dense-slices-5s",
            "dense-slices-strict", "requests-strict", "requests-loose"], V),
            id="no data is invalid"),
        pytest.param("resolution-coarse", {
            "failover-20s": F, "failover-40s": N, "failover-90s": P, "coarse-uptime": N,
        }, id="15 s scrapes"),
    ],
)  # fmt: skip
def test_recorded_runs_get_the_expected_verdicts(
    recording: str, expected: dict[str, Verdict]
) -> None:
    assert expected == {name: result.verdict for name, result in replay(recording).items()}


def test_too_few_probes_say_what_they_cannot_resolve_and_what_to_do() -> None:
    result = replay("resolution-pass")["sparse-uptime"]

    expected = (
        "36 of 36 probes succeeded (100.000 %), but 36 probes over 35.0 s (one per 972 ms) "
        "cannot resolve an error budget of 35 ms (0.100 % of 35.0 s); need >= 1,000 probes: "
        "probe more often or lengthen the window"
    )
    assert result.detail.startswith(expected), result.detail


def test_forty_targets_probed_every_second_resolve_ninety_nine_point_nine() -> None:
    result = replay("resolution-pass")["dense-uptime"]

    assert (Verdict.PASS, 1.0, 1440) == (result.verdict, result.value, result.samples)


def test_too_few_events_say_how_many_are_needed() -> None:
    result = replay("resolution-pass")["requests-strict"]

    assert "350 events cannot resolve an error budget of 0.100 % (one bad event in 1,000); " in (
        result.detail
    )


def test_too_few_slices_name_the_slices() -> None:
    result = replay("resolution-pass")["dense-slices-strict"]

    assert "35 slices over 35.0 s (one per 1.0 s) cannot resolve" in result.detail


def test_a_recovery_within_one_scrape_of_the_objective_names_the_scrape_interval() -> None:
    result = replay("resolution-coarse")["failover-40s"]

    assert "30.0 s is within one scrape interval (15.0 s) of the objective" in result.detail


def test_the_scrape_interval_measured_with_is_what_the_judge_resolves_with() -> None:
    (spec,) = [s for s in load_slo_file(FIXTURES / "coarse-slos.yaml") if s.name == "failover-40s"]
    window = Window("kill", 0.0, 120.0)

    def verdict(scrape_interval_s: float) -> Verdict:
        measured = Measurement(value=30.0, samples=1, resolution_s=scrape_interval_s)
        return judge(spec, measured, window).verdict

    assert (Verdict.INCONCLUSIVE, Verdict.PASS) == (verdict(15.0), verdict(1.0))


def test_slice_uptime_counts_slices_in_which_every_probe_succeeded() -> None:
    result = replay("resolution-fail")["dense-slices-5s"]

    assert (5 / 7, 7) == (result.value, result.samples)
    assert "5 of 7 time slices had every probe succeed (71.429 %)" in result.detail


def test_slice_uptime_asks_one_point_per_slice_from_the_first_whole_slice() -> None:
    recording = json.loads((FIXTURES / "resolution-pass.json").read_text())
    prom = Replayed(recording["answers"])
    start, end = recording["run_window"]["start"], recording["run_window"]["end"]

    replay("resolution-pass", prom=prom)

    slices = [(s, e, step) for q, s, e, step in prom.asked_ranges if "probe-dense" in q]
    assert [(start + 1.0, end, 1.0), (start + 5.0, end, 5.0), (start + 1.0, end, 1.0)] == slices


class Counting:
    """A PromQuery for one long slice-uptime window: every slice good, one point per step."""

    def __init__(self) -> None:
        self.pieces: list[tuple[float, float, float]] = []

    def instant(self, query: str, at: float) -> list[Sample]:
        raise DriverError("not recorded")

    def range(self, query: str, *, start: float, end: float, step_s: float) -> list[Series]:
        self.pieces.append((start, end, step_s))
        count = round((end - start) / step_s) + 1
        return [({}, [(start + i * step_s, 1.0) for i in range(count)])]


def test_a_long_slice_uptime_is_asked_in_pieces_prometheus_accepts() -> None:
    spec = SloSpec(
        name="slices", indicator=Indicator(kind=IndicatorKind.SLICE_UPTIME, job="j"),
        objective=0.5, comparator=Comparator.GE,
    )  # fmt: skip
    prom = Counting()

    result = measure(
        spec, prom=prom, window=Window("run", 0.0, 2500.0), fault=None, external={},
        scrape_interval_s=0.1,
    )  # fmt: skip

    points = [round((end - start) / step) + 1 for start, end, step in prom.pieces]
    assert [10_000, 10_000, 5_000] == points
    assert (1.0, 25_000) == (result.value, result.samples)


UPTIME = SloSpec(
    name="up", indicator=Indicator(kind=IndicatorKind.PROBE_UPTIME, job="j"),
    objective=0.999, comparator=Comparator.GE,
)  # fmt: skip


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param(999, False, id="999 probes fall short"),
        pytest.param(1000, True, id="1,000 probes resolve 99.9 %"),
    ],
)
def test_a_share_needs_one_over_its_budget_samples(samples: int, expected: bool) -> None:
    reason = unresolved(
        UPTIME, value=1.0, samples=samples, resolution_s=0.0, window=Window("run", 0, 1000)
    )

    assert expected == (reason == "")


def test_an_objective_of_one_hundred_percent_leaves_nothing_to_resolve() -> None:
    spec = SloSpec(name="up", indicator=UPTIME.indicator, objective=1.0, comparator=Comparator.GE)

    reason = unresolved(
        spec, value=1.0, samples=10**6, resolution_s=0.0, window=Window("run", 0, 1000)
    )

    assert reason.startswith("an objective of 100 % leaves no error budget")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("15s", 15.0, id="seconds"),
        pytest.param("1m30s", 90.0, id="compound"),
        pytest.param("500ms", 0.5, id="milliseconds"),
        pytest.param(2, 2.0, id="a number of seconds"),
        pytest.param("0s", None, id="zero"),
        pytest.param("5 s", None, id="a space"),
        pytest.param(True, None, id="a boolean"),
    ],
)
def test_slice_durations_are_read_like_prometheus_durations(
    text: object, expected: float | None
) -> None:
    assert expected == parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(0.035, "35 ms", id="ms"),
        pytest.param(35.0, "35.0 s", id="s"),
        pytest.param(150.0, "2.5 min", id="min"),
        pytest.param(23_400.0, "6.5 h", id="h"),
    ],
)
def test_durations_read_as_people_write_them(seconds: float, expected: str) -> None:
    assert expected == seconds_text(seconds)


def test_a_bad_slice_names_the_file_the_line_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "slices.yaml"
    path.write_text(
        "slos:\n  - name: s\n    indicator: {kind: slice-uptime, job: j, slice: soon}\n"
        "    objective: 0.99\n    comparator: '>='\n"
    )

    with pytest.raises(ConfigError) as caught:
        load_slo_file(path)

    assert f"{path}:3" in str(caught.value)
    assert "field 'slos[0].indicator.slice'" in str(caught.value)
    assert "at least 1 ms such as 5s" in str(caught.value)


def test_a_slice_uptime_file_gives_the_slice_in_seconds() -> None:
    (spec,) = [s for s in load_slo_file(FIXTURES / "burn-slos.yaml") if s.name == "long-slices"]

    assert (IndicatorKind.SLICE_UPTIME, "probe-long", 10.0) == (
        spec.indicator.kind,
        spec.indicator.job,
        spec.indicator.slice_s,
    )
