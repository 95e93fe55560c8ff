"""Judging is pure: comparator holds → PASS, else FAIL; no data is never PASS."""

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
FAILOVER = SloSpec(
    name="controller-failover",
    indicator=Indicator(kind=IndicatorKind.RECOVERY_TIME, fault="kill", promql="max(t)"),
    objective=30,
    comparator=Comparator.LE,
)


@pytest.mark.parametrize(
    ("spec", "measurement", "expected"),
    [
        pytest.param(UPTIME, Measurement(1.0, samples=62), Verdict.PASS, id="all probes up"),
        pytest.param(UPTIME, Measurement(0.95, samples=60), Verdict.FAIL, id="probes failed"),
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
    result = judge(UPTIME, Measurement(1.0, samples=62), WINDOW)

    assert "62 of 62 probes succeeded (100.000 %); objective ≥ 99.900 %" == result.detail


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
