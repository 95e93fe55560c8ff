"""MTTR per fault injection from the SLI series, and its spread over repeated injections.

The recordings in fixtures/prometheus/mttr-*.json were made by
fixtures/prometheus/record_mttr.py from a real Prometheus: API kills after which the probes
come back in 2, 5 and 9 s (the third shows late and flaps), one that never comes back, and a
window without data. The recovery search itself is tested as a pure function.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.model import FaultRecord, PhaseRecord, SloResult, Verdict, Window
from harness.slo import (
    Comparator,
    Healthy,
    Indicator,
    IndicatorKind,
    Sample,
    Series,
    SloSpec,
    Statistic,
    evaluate_slos,
    is_distribution,
    load_slo_file,
    scopes,
)
from harness.slo._mttr import (
    Recovery,
    distribution,
    first_recovery,
    measure_mttr,
    percentile,
    worst_points,
)
from harness.util.yamlsrc import load_yaml
from tests.contracts.test_slo_files import schema, validate
from tests.unit.test_slo_file import load_text, problems_of
from tests.unit.test_slo_measure import ReplayedPrometheus

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "fixtures/prometheus"
UP = Healthy(Comparator.GE, 1.0)
API, CTL = "api-replica-kill", "controller-leader-kill"


def recording(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def replay(name: str) -> dict[tuple[str, str], SloResult]:
    """Evaluate mttr-slos.yaml over a recorded run: results by (SLO name, window name)."""
    run = recording(name)
    window = run["run_window"]
    results = evaluate_slos(
        load_slo_file(FIXTURES / "mttr-slos.yaml"),
        prom=ReplayedPrometheus(run["answers"]),
        run_window=Window(window["name"], window["start"], window["end"]),
        phases=[PhaseRecord(**phase) for phase in run["phases"]],
        faults=[FaultRecord(**{**f, "status": Verdict(f["status"])}) for f in run["faults"]],
        external=run["external"],
        scrape_interval_s=run["scrape_interval_s"],
    )
    return {(result.name, result.window.name): result for result in results}


def verdicts(name: str) -> dict[tuple[str, str], Verdict]:
    return {key: result.verdict for key, result in replay(name).items()}


def each(slo: str, fault: str, *found: Verdict) -> dict[tuple[str, str], Verdict]:
    """Per-injection verdicts, then the verdict over all injections when there are several."""
    names = [fault if n == 1 else f"{fault}#{n}" for n in range(1, len(found))]
    keys = [*names, f"all {fault}"] if len(found) > 2 else [fault]
    return {(slo, window): verdict for window, verdict in zip(keys, found, strict=False)}


P, F, INV, INC = Verdict.PASS, Verdict.FAIL, Verdict.INVALID, Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("mttr-repeated", {
            **each("api-mttr", API, P, P, P, P),
            **each("api-mttr-median", API, P, P, F, P),
            **each("api-mttr-strict", API, P, F, F, F),
            **each("api-errors-mttr", API, P, P, P, P),
            **each("controller-failover", CTL, P, P, P, P),
        }, id="back in 2, 5 and 9 s"),
        pytest.param("mttr-never", {
            **each("api-mttr", API, P, F, F),
            **each("api-mttr-median", API, P, F, P),
            **each("api-mttr-strict", API, INC, F, F),
            **each("api-errors-mttr", API, P, F, F),
            **each("controller-failover", CTL, P, F, F),
        }, id="back in 4 s, then never"),
        pytest.param("mttr-nodata", {
            **each("api-mttr", API, INV, INV, INV),
            **each("api-mttr-median", API, INV, INV, INV),
            **each("api-mttr-strict", API, INV, INV, INV),
            **each("api-errors-mttr", API, INV, INV, INV),
            ("controller-failover", CTL): F,
        }, id="no data"),
    ],
)  # fmt: skip
def test_recorded_runs_get_a_verdict_per_injection_and_over_all_injections(
    name: str, expected: dict[tuple[str, str], Verdict]
) -> None:
    assert expected == verdicts(name)


def test_each_injection_recovers_at_the_first_of_three_good_probes_in_a_row() -> None:
    results = replay("mttr-repeated")

    values = [results["api-mttr", w].value for w in (API, f"{API}#2", f"{API}#3")]
    assert [2.0, 5.0, 9.0] == values


def test_good_probes_before_the_fault_shows_and_a_single_good_probe_are_no_recovery() -> None:
    # The third kill shows only from +3 s (three good probes after the kill) and flaps at +5 s.
    result = replay("mttr-repeated")["api-mttr", f"{API}#3"]

    assert 9.0 == result.value
    assert "left ≥ 1 at +3.0 s, back for 3 samples in a row from +9.0 s" in result.detail


def test_an_injection_is_searched_until_the_next_injection_of_the_same_fault() -> None:
    run = recording("mttr-repeated")
    injected = [f["injected_at"] for f in run["faults"] if f["name"] == API]
    results = replay("mttr-repeated")

    windows = [results["api-mttr", w].window for w in (API, f"{API}#2", f"{API}#3")]
    assert [
        Window(API, injected[0], injected[1]),
        Window(f"{API}#2", injected[1], injected[2]),
        Window(f"{API}#3", injected[2], run["run_window"]["end"]),
    ] == windows


def test_repeated_injections_are_judged_on_the_spread_of_their_recovery_times() -> None:
    run = recording("mttr-repeated")
    result = replay("mttr-repeated")["api-mttr", f"all {API}"]

    first = min(f["injected_at"] for f in run["faults"] if f["name"] == API)
    assert Window(f"all {API}", first, run["run_window"]["end"]) == result.window
    assert (9.0, 3) == (result.value, result.samples)
    assert {"count": 3.0, "p50": 5.0, "p95": 9.0, "max": 9.0} == result.stats
    assert (
        "p50 5.0 s, p95 9.0 s, max 9.0 s over 3 injections, judged on the max; objective ≤ 12.0 s"
        == result.detail
    )
    assert is_distribution(result)


@pytest.mark.parametrize(
    ("slo", "expected"),
    [
        pytest.param("api-mttr-median", 5.0, id="p50"),
        pytest.param("api-mttr-strict", 9.0, id="p95"),
        pytest.param("api-mttr", 9.0, id="max"),
    ],
)
def test_the_spread_is_judged_on_the_chosen_statistic(slo: str, expected: float) -> None:
    assert expected == replay("mttr-repeated")[slo, f"all {API}"].value


def test_an_error_ratio_recovers_only_once_its_rate_window_is_clean() -> None:
    results = replay("mttr-repeated")

    values = [results["api-errors-mttr", w].value for w in (API, f"{API}#2", f"{API}#3")]
    assert [6.0, 9.0, 13.0] == values  # 4 s after the probes: the 5 s rate window


def test_recovery_time_slos_get_the_spread_too_each_checked_at_the_next_injection() -> None:
    results = replay("mttr-repeated")

    values = [results["controller-failover", w].value for w in (CTL, f"{CTL}#2", f"{CTL}#3")]
    assert [3.0, 4.5, 6.2] == pytest.approx(values)
    assert {"count": 3.0, "p50": 4.5, "p95": 6.2, "max": 6.2} == pytest.approx(
        results["controller-failover", f"all {CTL}"].stats
    )


def test_an_injection_that_never_recovers_fails_closed() -> None:
    result = replay("mttr-never")["api-mttr", f"{API}#2"]

    assert (Verdict.FAIL, None) == (result.verdict, result.value)
    assert result.detail.startswith("not recovered within 40.0 s: the indicator left ≥ 1 at +1.0 s")


def test_a_lost_injection_sets_the_max_but_not_the_median() -> None:
    results = replay("mttr-never")
    worst, median = results["api-mttr", f"all {API}"], results["api-mttr-median", f"all {API}"]

    assert (Verdict.FAIL, None) == (worst.verdict, worst.value)
    assert {"count": 2.0, "p50": 4.0, "not_recovered": 1.0} == worst.stats
    assert worst.detail.startswith("p50 4.0 s, p95 not recovered, max not recovered over 2")
    assert (Verdict.PASS, 4.0) == (median.verdict, median.value)


def test_no_samples_make_each_injection_and_the_spread_invalid() -> None:
    results = replay("mttr-nodata")

    assert results["api-mttr", API].detail.startswith("the query returned no samples from")
    assert results["api-mttr", f"all {API}"].detail.startswith(
        f"2 of 2 injections could not be judged ({API}, {API}#2)"
    )


# The recovery search, as a pure function.


def points(values: Sequence[float], *, start: float = 0.0, step: float = 1.0) -> list[Any]:
    return [(start + i * step, v) for i, v in enumerate(values)]


NAN = math.nan


@pytest.mark.parametrize(
    ("values", "consecutive", "expected"),
    [
        pytest.param([1, 0, 0, 1, 1, 1, 1], 3, Recovery(1.0, 3.0), id="three in a row"),
        pytest.param([1, 0, 1, 0, 1, 1, 0, 1, 1, 1], 3, Recovery(1.0, 7.0), id="flapping"),
        pytest.param([1, 0, 1, 0, 1, 1, 0, 1, 1, 1], 1, Recovery(1.0, 2.0), id="one is enough"),
        pytest.param([1, 1, 1, 1, 0, 1, 1, 1], 3, Recovery(4.0, 5.0), id="good before the fault"),
        pytest.param([1, 0, 1, NAN, 1, 1, 1], 3, Recovery(1.0, 4.0), id="NaN breaks a run"),
        pytest.param([NAN, 0, NAN, 1, 1, 1], 3, Recovery(1.0, 3.0), id="NaN is not a breach"),
        pytest.param([1, 1, 1, 1], 3, Recovery(None, None), id="never left"),
        pytest.param([NAN, NAN], 3, Recovery(None, None), id="all NaN"),
        pytest.param([1, 0, 0, 1, 1], 3, Recovery(1.0, None), id="not back in time"),
        pytest.param([], 3, Recovery(None, None), id="no points"),
    ],
)
def test_first_recovery_needs_n_consecutive_healthy_samples_after_a_breach(
    values: list[float], consecutive: int, expected: Recovery
) -> None:
    assert expected == first_recovery(
        points(values), within=UP, consecutive=consecutive, step_s=1.0
    )


def test_a_missing_step_breaks_a_run_of_healthy_samples() -> None:
    gappy = [(0.0, 0.0), (1.0, 1.0), (2.0, 1.0), (4.0, 1.0), (5.0, 1.0), (6.0, 1.0)]

    assert Recovery(0.0, 4.0) == first_recovery(gappy, within=UP, consecutive=3, step_s=1.0)


def test_the_healthy_range_follows_its_comparator() -> None:
    errors = points([0.0, 0.5, 0.02, 0.01, 0.0, 0.01])

    found = first_recovery(errors, within=Healthy(Comparator.LE, 0.01), consecutive=3, step_s=1.0)

    assert Recovery(1.0, 3.0) == found


def test_several_series_are_healthy_only_when_every_one_is() -> None:
    series: list[Series] = [
        ({"instance": "a"}, [(0.0, 1.0), (1.0, 1.0), (2.0, NAN), (3.0, NAN)]),
        ({"instance": "b"}, [(0.0, 1.0), (1.0, 0.0), (2.0, 1.0)]),
    ]

    merged = worst_points(series, UP)

    assert [(0.0, 1.0), (1.0, 0.0), (2.0, 1.0)] == merged[:3]
    assert math.isnan(merged[3][1])


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        pytest.param([9.0, 2.0, 5.0], 50, 5.0, id="p50 of three"),
        pytest.param([9.0, 2.0, 5.0], 95, 9.0, id="p95 of three"),
        pytest.param([float(n) for n in range(1, 21)], 95, 19.0, id="p95 of twenty"),
        pytest.param([float(n) for n in range(1, 21)], 50, 10.0, id="p50 of twenty"),
        pytest.param([5.0, 1.0, 4.0, 2.0, 3.0], 50, 3.0, id="p50 of five is the third"),
        pytest.param([float(n) for n in range(1, 31)], 95, 29.0, id="p95 of thirty"),
        pytest.param([4.0, math.inf], 50, 4.0, id="unbounded ranks last"),
        pytest.param([3.0], 95, 3.0, id="one value"),
    ],
)
def test_percentiles_are_nearest_rank(values: list[float], p: float, expected: float) -> None:
    assert expected == percentile(values, p)


# Per injection and over all injections, without Prometheus.

RUN = Window("run", 0.0, 100.0)


def mttr_spec(**indicator: Any) -> SloSpec:
    fields = {"fault": "kill", "promql": "min(up)", "within": UP, **indicator}
    return SloSpec(
        name="mttr",
        indicator=Indicator(kind=IndicatorKind.MTTR, **fields),
        objective=10.0,
        comparator=Comparator.LE,
    )


def fault(at: float | None) -> FaultRecord:
    return FaultRecord("kill", "e.yaml", injected_at=at, recovered_at=None, status=Verdict.PASS)


def result(window: str, verdict: Verdict, value: float | None) -> SloResult:
    return SloResult(
        name="mttr", verdict=verdict, value=value, objective=10.0, comparator="<=",
        window=Window(window, 0.0, 1.0),
    )  # fmt: skip


def test_an_mttr_slo_with_the_run_window_is_still_judged_per_injection() -> None:
    found = scopes(mttr_spec(), run_window=RUN, phases=[], faults=[fault(20.0), fault(50.0)])

    assert [Window("kill", 20.0, 50.0), Window("kill#2", 50.0, 100.0)] == [s.window for s in found]


def test_a_fault_injected_once_has_no_spread() -> None:
    assert None is distribution(
        mttr_spec(), [result("kill", P, 3.0)], run_window=RUN, faults=[fault(20.0)],
        resolution_s=1.0,
    )  # fmt: skip


def test_an_injection_that_was_not_applied_leaves_the_spread_invalid() -> None:
    judged = [result("kill", P, 3.0), result("kill#2", INV, None), result("kill#3", F, None)]

    spread = distribution(
        mttr_spec(), judged, run_window=RUN, faults=[fault(20.0), fault(None), fault(60.0)],
        resolution_s=1.0,
    )  # fmt: skip

    assert spread is not None
    assert (Verdict.INVALID, None, Window("all kill", 20.0, 100.0)) == (
        spread.verdict,
        spread.value,
        spread.window,
    )
    assert spread.detail.startswith("1 of 3 injections could not be judged (kill#2)")


def test_a_spread_within_one_scrape_of_the_objective_is_inconclusive() -> None:
    judged = [result("kill", P, 3.0), result("kill#2", P, 9.5)]

    spread = distribution(
        mttr_spec(statistic=Statistic.MAX), judged, run_window=RUN,
        faults=[fault(20.0), fault(50.0)], resolution_s=1.0,
    )  # fmt: skip

    assert spread is not None
    assert (Verdict.INCONCLUSIVE, 9.5) == (spread.verdict, spread.value)


def test_other_kinds_have_no_spread() -> None:
    spec = SloSpec(
        name="mttr", indicator=Indicator(kind=IndicatorKind.SESSIONS_PRESERVED, fault="kill"),
        objective=1.0, comparator=Comparator.GE,
    )  # fmt: skip
    judged = [result("kill", P, 1.0), result("kill#2", P, 1.0)]

    assert None is distribution(
        spec, judged, run_window=RUN, faults=[fault(20.0), fault(50.0)], resolution_s=1.0
    )


class Synthetic:
    """A PromQuery whose one series is ``value(t)`` at every step; it counts its range calls."""

    def __init__(self, down_until: float) -> None:
        self.down_until = down_until
        self.calls: list[tuple[float, float, int]] = []

    def instant(self, query: str, at: float) -> list[Sample]:
        raise AssertionError("an mttr indicator asks only range queries")

    def range(self, query: str, *, start: float, end: float, step_s: float) -> list[Series]:
        count = math.floor((end - start) / step_s + 1e-9) + 1
        self.calls.append((start, end, count))
        times = [start + i * step_s for i in range(count)]
        return [({}, [(t, 0.0 if t < self.down_until else 1.0) for t in times])]


def test_long_windows_are_asked_in_pieces_prometheus_allows_until_recovery() -> None:
    prom = Synthetic(down_until=25_000.0)
    long_run = Window("run", 0.0, 100_000.0)

    (one,) = evaluate_slos(
        [mttr_spec(), ], prom=prom, run_window=long_run, phases=[], faults=[fault(0.0)],
        external={}, scrape_interval_s=1.0,
    )  # fmt: skip

    assert 25_000.0 == one.value
    assert [(0.0, 9_999.0), (10_000.0, 19_999.0), (20_000.0, 29_999.0)] == [
        (start, end) for start, end, _ in prom.calls
    ]
    assert all(count <= 10_000 for _, _, count in prom.calls)


# SLO files: the mttr kind.

GOOD = """\
slos:
  - name: api-mttr
    indicator:
      kind: mttr
      fault: kill
      promql: 'min(probe_success{job="probe-api"})'
      within: {comparator: ">=", value: 1}
    objective: 10
    comparator: "<="
"""


def test_an_mttr_indicator_defaults_to_three_in_a_row_judged_on_the_max(tmp_path: Path) -> None:
    (spec,) = load_text(tmp_path, GOOD)

    assert Indicator(
        kind=IndicatorKind.MTTR, fault="kill", promql='min(probe_success{job="probe-api"})',
        within=UP, consecutive=3, statistic=Statistic.MAX,
    ) == spec.indicator  # fmt: skip


def test_the_recorded_mttr_slo_file_and_the_example_validate_against_the_schema(
    tmp_path: Path,
) -> None:
    (tmp_path / "slos.yaml").write_text(GOOD)

    for path in (FIXTURES / "mttr-slos.yaml", tmp_path / "slos.yaml"):
        assert [] == validate(load_yaml(path).data, schema(), schema())


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            '      within: {comparator: ">=", value: 1}\n', "",
            "slos.yaml:3: field 'slos[0].indicator.within': missing; a mttr indicator needs "
            "'within'.",
            id="within missing",
        ),
        pytest.param(
            '{comparator: ">=", value: 1}', "1",
            "slos.yaml:7: field 'slos[0].indicator.within': expected a mapping such as "
            "{comparator: '>=', value: 1}.",
            id="within not a mapping",
        ),
        pytest.param(
            '">="', '"=>"',
            "slos.yaml:7: field 'slos[0].indicator.within.comparator': must be one of >=, <=, "
            ">, <, got '=>'; pick one.",
            id="within comparator",
        ),
        pytest.param(
            "value: 1}", "value: up}",
            "slos.yaml:7: field 'slos[0].indicator.within.value': expected a number, got 'up'; "
            "write one.",
            id="within value not a number",
        ),
        pytest.param(
            "value: 1}", "value: 1, vaule: 2}",
            "slos.yaml:7: field 'slos[0].indicator.within.vaule': unknown key; did you mean "
            "'value'?",
            id="within unknown key",
        ),
        pytest.param(
            "      fault: kill\n", "      fault: kill\n      consecutive: 0\n",
            "slos.yaml:6: field 'slos[0].indicator.consecutive': expected a whole number ≥ 1 of "
            "healthy samples in a row, got 0; write one such as 3.",
            id="consecutive zero",
        ),
        pytest.param(
            "      fault: kill\n", "      fault: kill\n      consecutive: three\n",
            "slos.yaml:6: field 'slos[0].indicator.consecutive': expected a whole number ≥ 1 of "
            "healthy samples in a row, got 'three'; write one such as 3.",
            id="consecutive not a number",
        ),
        pytest.param(
            "      fault: kill\n", "      fault: kill\n      statistic: p99\n",
            "slos.yaml:6: field 'slos[0].indicator.statistic': must be one of p50, p95, max, "
            "got 'p99'; pick one.",
            id="unknown statistic",
        ),
        pytest.param(
            'job="probe-api"}', 'job="probe-api"}[$window]',
            "slos.yaml:6: field 'slos[0].indicator.promql': an mttr query is evaluated at every "
            "scrape interval and has no $window; use a fixed range such as [30s], or none.",
            id="window placeholder",
        ),
        pytest.param(
            '    comparator: "<="\n', '    comparator: "<="\n    window: soak\n',
            "slos.yaml:10: field 'slos[0].window': an mttr SLO is judged per injection of its "
            "fault, not over 'soak'; write 'each-fault' or leave 'window' out.",
            id="phase window",
        ),
        pytest.param(
            "      fault: kill\n", "",
            "slos.yaml:3: field 'slos[0].indicator.fault': missing; a mttr indicator needs "
            "'fault'.",
            id="fault missing",
        ),
    ],
)  # fmt: skip
def test_a_bad_mttr_field_names_the_file_line_and_field(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    assert [expected] == problems_of(tmp_path, GOOD.replace(old, new))


class _Series:
    """A PromQuery over one fixed series of points (for range queries only)."""

    def __init__(self, pts: list[tuple[float, float]]) -> None:
        self.pts = pts

    def instant(self, query: str, at: float) -> list[Any]:
        raise AssertionError("no instant query expected")

    def range(self, query: str, *, start: float, end: float, step_s: float) -> list[Any]:
        return [({}, [(t, v) for t, v in self.pts if start <= t <= end])]


def test_a_breach_that_starts_only_after_another_fault_is_that_faults_not_this_ones() -> None:
    # "kill" at 10 s never shows; "other" at 40 s drops the SLI from 45 s to 50 s.
    other = FaultRecord("other", "o.yaml", injected_at=40.0, recovered_at=None, status=P)
    found = scopes(mttr_spec(), run_window=RUN, phases=[], faults=[fault(10.0), other])
    (scope,) = found
    assert 40.0 == scope.breach_by
    values = [1.0 if not 45 <= t < 50 else 0.0 for t in range(100)]
    prom = _Series([(float(t), v) for t, v in zip(range(100), values, strict=True)])

    before = measure_mttr(
        mttr_spec(), prom=prom, window=scope.window, fault=fault(10.0), step_s=1.0
    )
    cut = measure_mttr(
        mttr_spec(), prom=prom, window=scope.window, fault=fault(10.0), step_s=1.0,
        breach_by=scope.breach_by,
    )  # fmt: skip

    assert 40.0 == before.value  # the other fault's breach, counted against this one
    assert 0.0 == cut.value
