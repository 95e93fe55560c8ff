"""Judging is pure: comparator holds → PASS, else FAIL; no data is never PASS.

A passing value the samples cannot resolve is INCONCLUSIVE; a breach stays FAIL.
"""

from __future__ import annotations

import math

import pytest

from harness.model import Verdict, Window
from harness.slo import Comparator, Indicator, IndicatorKind, Measurement, SloSpec, judge

WINDOW = Window("run", 1000.0, 1062.0)
UPTIME = SloSpec(
    name="api-availability",
    indicator=Indicator(kind=IndicatorKind.PROBE_UPTIME, job="probe-api"),
    objective=0.999,
    comparator=Comparator.GE,
)
LATENCY = SloSpec(
    name="api-latency-p99",
    indicator=Indicator(kind=IndicatorKind.THRESHOLD, promql="q_seconds[$window]"),
    objective=0.5,
    comparator=Comparator.LE,
)
RATIO = SloSpec(
    name="api-success",
    indicator=Indicator(kind=IndicatorKind.RATIO, good="g[$window]", total="t[$window]"),
    objective=0.99,
    comparator=Comparator.GE,
)
SLICES = SloSpec(
    name="api-slices",
    indicator=Indicator(kind=IndicatorKind.SLICE_UPTIME, job="probe-api"),
    objective=0.999,
    comparator=Comparator.GE,
)
FAILOVER = SloSpec(
    name="controller-failover",
    indicator=Indicator(kind=IndicatorKind.RECOVERY_TIME, fault="kill", promql="max(t)"),
    objective=30,
    comparator=Comparator.LE,
)


@pytest.mark.parametrize(
    ("spec", "measurement", "expected"),
    [
        pytest.param(UPTIME, Measurement(1.0, samples=1000), Verdict.PASS, id="all probes up"),
        pytest.param(
            UPTIME, Measurement(1.0, samples=62), Verdict.INCONCLUSIVE, id="too few probes"
        ),
        pytest.param(UPTIME, Measurement(0.95, samples=60), Verdict.FAIL, id="probes failed"),
        pytest.param(RATIO, Measurement(1.0, samples=100), Verdict.PASS, id="enough events"),
        pytest.param(
            RATIO, Measurement(1.0, samples=99), Verdict.INCONCLUSIVE, id="too few events"
        ),
        pytest.param(RATIO, Measurement(1.0), Verdict.INVALID, id="no events"),
        pytest.param(
            SLICES, Measurement(1.0, samples=1000, resolution_s=1.0), Verdict.PASS,
            id="enough slices",
        ),
        pytest.param(
            SLICES, Measurement(1.0, samples=999, resolution_s=1.0), Verdict.INCONCLUSIVE,
            id="too few slices",
        ),
        pytest.param(
            FAILOVER, Measurement(4.2, resolution_s=1.0), Verdict.PASS, id="fast recovery"
        ),
        pytest.param(
            FAILOVER, Measurement(4.2, resolution_s=15.1), Verdict.INCONCLUSIVE,
            id="objective under two scrapes",
        ),
        pytest.param(
            FAILOVER, Measurement(29.5, resolution_s=1.0), Verdict.INCONCLUSIVE,
            id="within one scrape of the objective",
        ),
        pytest.param(
            FAILOVER, Measurement(31.0, resolution_s=15.1), Verdict.FAIL,
            id="a breach fails however coarse the scrapes",
        ),
        pytest.param(UPTIME, Measurement(None), Verdict.INVALID, id="no data"),
        pytest.param(UPTIME, Measurement(1.0, samples=0), Verdict.INVALID, id="no probes"),
        pytest.param(LATENCY, Measurement(0.5), Verdict.PASS, id="at the objective"),
        pytest.param(LATENCY, Measurement(0.51), Verdict.FAIL, id="above the objective"),
        pytest.param(LATENCY, Measurement(math.nan), Verdict.INVALID, id="NaN is no data"),
        pytest.param(
            FAILOVER, Measurement(None, failure="not recovered"), Verdict.FAIL, id="not recovered"
        ),
        pytest.param(
            FAILOVER, Measurement(None, invalid="fault not applied"), Verdict.INVALID,
            id="fault not applied",
        ),
    ],
)  # fmt: skip
def test_the_verdict_follows_the_comparator_and_no_data_is_never_pass(
    spec: SloSpec, measurement: Measurement, expected: Verdict
) -> None:
    assert expected == judge(spec, measurement, WINDOW).verdict


@pytest.mark.parametrize(
    ("comparator", "value", "expected"),
    [
        pytest.param(Comparator.GE, 1.0, True, id=">= equal"),
        pytest.param(Comparator.GT, 1.0, False, id="> equal"),
        pytest.param(Comparator.LE, 1.0, True, id="<= equal"),
        pytest.param(Comparator.LT, 0.9, True, id="< below"),
    ],
)
def test_comparators_compare_value_with_objective(
    comparator: Comparator, value: float, expected: bool
) -> None:
    assert expected == comparator.holds(value, 1.0)


def test_probe_uptime_detail_counts_the_probes() -> None:
    result = judge(UPTIME, Measurement(0.999, samples=1000), WINDOW)

    assert "999 of 1,000 probes succeeded (99.900 %); objective ≥ 99.900 %" == result.detail


def test_too_few_probes_say_what_they_cannot_resolve() -> None:
    result = judge(UPTIME, Measurement(1.0, samples=38), Window("run", 0.0, 35.0))

    expected = (
        "38 of 38 probes succeeded (100.000 %), but 38 probes over 35.0 s (one per 921 ms) "
        "cannot resolve an error budget of 35 ms (0.100 % of 35.0 s); need >= 1,000 probes: "
        "probe more often or lengthen the window; objective ≥ 99.900 %"
    )
    assert expected == result.detail


def test_an_objective_under_two_scrape_intervals_names_the_scrape_interval() -> None:
    result = judge(FAILOVER, Measurement(4.2, resolution_s=20.0), WINDOW)

    expected = (
        "recovered in 4.2 s, but a scrape interval of 20.0 s cannot resolve an objective of "
        "30.0 s; scrape at least every 15.0 s; objective ≤ 30.0 s"
    )
    assert expected == result.detail


def test_the_budget_figures_are_carried_and_said() -> None:
    stats = {"error_budget": 0.001, "budget_consumed": 0.5, "burn_rate": 0.5}

    result = judge(UPTIME, Measurement(0.9995, samples=2000, stats=stats), WINDOW)

    assert (stats, Verdict.PASS) == (result.stats, result.verdict)
    assert "; error budget 0.1 %, 50 % spent (burn rate 0.5); objective" in result.detail


def test_a_result_carries_the_spec_window_and_query() -> None:
    result = judge(LATENCY, Measurement(0.2, query="q_seconds[62s]"), WINDOW)

    expected = ("api-latency-p99", 0.2, 0.5, "<=", WINDOW, "gate", "q_seconds[62s]")
    actual = (
        result.name,
        result.value,
        result.objective,
        result.comparator,
        result.window,
        result.severity,
        result.query,
    )
    assert expected == actual
    assert "measured 0.2 s; objective ≤ 0.5 s" == result.detail


def test_no_data_says_so_in_the_detail() -> None:
    result = judge(LATENCY, Measurement(None, notes=("the query returned no value",)), WINDOW)

    expected = "no data, and no data is never PASS (the query returned no value); objective ≤ 0.5 s"
    assert expected == result.detail
