"""Parsing of rate-limit flags and the Retry-After arithmetic (pure)."""

from __future__ import annotations

import pytest

from refplat.ratelimit import RateLimit, Refusal, Scope


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("200:400", RateLimit(rate=200, burst=400), id="rate-and-burst"),
        pytest.param("0.5:1", RateLimit(rate=0.5, burst=1), id="fractional-rate"),
        pytest.param("5", RateLimit(rate=5, burst=5), id="burst-defaults-to-rate"),
        pytest.param("0", RateLimit(rate=0, burst=0), id="zero-is-off"),
        pytest.param("0:10", RateLimit(rate=0, burst=10), id="zero-rate-with-burst-is-off"),
    ],
)
def test_a_rate_limit_flag_parses_as_rps_and_burst(text: str, expected: RateLimit) -> None:
    assert expected == RateLimit.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("fast", id="words"),
        pytest.param("10:", id="missing-burst"),
        pytest.param("10:0", id="zero-burst"),
        pytest.param("-1:5", id="negative-rate"),
        pytest.param("inf:5", id="infinite-rate"),
        pytest.param("10:2.5", id="fractional-burst"),
    ],
)
def test_a_malformed_rate_limit_flag_is_refused_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="RPS:BURST"):
        RateLimit.parse(text)


def test_zero_rate_turns_the_limit_off() -> None:
    assert (False, True) == (RateLimit.parse("0").enabled, RateLimit.parse("1:1").enabled)


@pytest.mark.parametrize(
    ("seconds", "header"),
    [
        pytest.param(0.0001, "1", id="a-sliver-is-one-second"),
        pytest.param(1.0, "1", id="whole-seconds-stay"),
        pytest.param(1.2, "2", id="fractions-round-up"),
        pytest.param(59.9, "60", id="long-waits"),
    ],
)
def test_retry_after_is_whole_seconds_rounded_up(seconds: float, header: str) -> None:
    assert header == Refusal(scope=Scope.TOKEN, retry_after_s=seconds).retry_after_header
