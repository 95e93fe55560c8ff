"""Error budgets and burn rates: the arithmetic, and a recorded 6.5 h run with a burst of errors.

burn-long (fixtures/prometheus/record.py, group "burn"): one probe a second for 6.5 h, every
probe failing and one request in ten failing for 10 minutes from +3 h.
"""

from __future__ import annotations

import functools
import math

import pytest

from harness.model import SloResult, Verdict
from harness.slo._budget import (
    BURN_PAIRS,
    BurnPair,
    budget_stats,
    burn_rate,
    describe_budget,
    duration_label,
    pair_stats,
    pairs_within,
    peak_of_min,
)
from tests.unit.test_slo_resolution import replay

FAST = BurnPair(300.0, 3600.0, 14.4)


@pytest.mark.parametrize(
    ("objective", "value", "expected"),
    [
        pytest.param(0.999, 1.0, {"error_budget": 0.001, "budget_consumed": 0.0,
                                  "burn_rate": 0.0}, id="nothing spent"),
        pytest.param(0.999, 0.9995, {"error_budget": 0.001, "budget_consumed": 0.5,
                                     "burn_rate": 0.5}, id="half spent"),
        pytest.param(0.99, 0.97, {"error_budget": 0.01, "budget_consumed": 3.0,
                                  "burn_rate": 3.0}, id="overspent three times"),
        pytest.param(1.0, 1.0, {"error_budget": 0.0}, id="no budget, no burn rate"),
    ],
)  # fmt: skip
def test_budget_stats_divide_the_bad_share_by_the_budget(
    objective: float, value: float, expected: dict[str, float]
) -> None:
    assert expected == pytest.approx(budget_stats(objective, value))


def test_a_burn_rate_of_nan_or_without_budget_is_none() -> None:
    assert (None, None) == (burn_rate(math.nan, 0.001), burn_rate(0.1, 0.0))


def test_the_peak_takes_the_smaller_burn_at_each_instant_both_series_have() -> None:
    short = [(0.0, 20.0), (30.0, 2.0), (60.0, math.nan), (90.0, 50.0)]
    long = [(0.0, 3.0), (30.0, 16.0), (60.0, 40.0)]

    assert 3.0 == peak_of_min(short, long)


def test_no_common_instant_gives_no_peak() -> None:
    assert peak_of_min([(0.0, 1.0)], [(30.0, 1.0)]) is None


@pytest.mark.parametrize(
    ("bad", "fired"),
    [
        pytest.param(0.0144, 0.0, id="at the threshold: no alert"),
        pytest.param(0.0145, 1.0, id="above the threshold: alert"),
    ],
)
def test_a_pair_fires_only_when_both_windows_burn_above_its_threshold(
    bad: float, fired: float
) -> None:
    stats = pair_stats(FAST, [(0.0, 0.5)], [(0.0, bad)], budget=0.001)

    assert {"burn_5m_1h_peak": pytest.approx(bad / 0.001), "burn_5m_1h_fired": fired} == stats


def test_pairs_are_left_out_of_windows_shorter_than_their_long_window() -> None:
    assert ((BURN_PAIRS[0],), (BURN_PAIRS[1],)) == pairs_within(2 * 3600.0)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        pytest.param(300.0, "5m", id="minutes"),
        pytest.param(21600.0, "6h", id="hours"),
        pytest.param(90.0, "90s", id="not whole minutes"),
    ],
)
def test_durations_are_labelled_in_their_largest_whole_unit(seconds: float, expected: str) -> None:
    assert expected == duration_label(seconds)


def test_the_budget_phrase_says_what_was_spent_and_whether_alerts_fired() -> None:
    stats = {
        "error_budget": 0.001, "budget_consumed": 25.64, "burn_rate": 25.64,
        "burn_5m_1h_peak": 166.7, "burn_5m_1h_fired": 1.0,
    }  # fmt: skip

    expected = (
        "error budget 0.1 %, 2,564 % spent (burn rate 25.6), 5m/1h burn peak 167 vs 14.4: "
        "alert fired"
    )
    assert expected == describe_budget(stats)


@functools.cache
def long_run() -> dict[str, SloResult]:
    return replay("burn-long")


@pytest.mark.parametrize(
    ("name", "verdict", "fired"),
    [
        pytest.param("long-uptime-strict", Verdict.FAIL, (1.0, 1.0), id="99.9 % of probes"),
        pytest.param("long-uptime-loose", Verdict.PASS, (0.0, 0.0), id="90 % of probes"),
        pytest.param("long-slices", Verdict.FAIL, (1.0, 0.0), id="99 % of 10 s slices"),
        pytest.param("long-requests", Verdict.PASS, (0.0, 0.0), id="99 % of requests"),
    ],
)
def test_a_long_run_reports_whether_each_burn_rate_alert_would_have_fired(
    name: str, verdict: Verdict, fired: tuple[float, float]
) -> None:
    result = long_run()[name]

    assert (verdict, fired) == (
        result.verdict,
        (result.stats["burn_5m_1h_fired"], result.stats["burn_30m_6h_fired"]),
    )


def test_the_fast_pair_peaks_at_the_hour_burn_of_a_ten_minute_outage() -> None:
    stats = long_run()["long-uptime-strict"].stats

    # 600 of the last 3,600 probes failed: 1/6 bad against a budget of 0.1 %.
    assert (1 / 6 / 0.001) == pytest.approx(stats["burn_5m_1h_peak"], rel=0.01)
    assert (600 / 23_401 / 0.001) == pytest.approx(stats["budget_consumed"])


def test_a_long_run_says_its_budget_and_alerts_in_the_detail() -> None:
    detail = long_run()["long-requests"].detail

    assert "error budget 1 %, 25.6 % spent (burn rate 0.256), 5m/1h burn peak 1.67" in detail


def test_a_short_run_leaves_the_pairs_out_and_says_so() -> None:
    result = replay("resolution-pass")["dense-uptime"]

    assert {"error_budget", "budget_consumed", "burn_rate"} == set(result.stats)
    assert "too short for the burn-rate pairs 5m/1h (needs 1h), 30m/6h (needs 6h)" in (
        result.detail
    )
