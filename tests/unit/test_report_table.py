"""The terminal table: SLOs, faults and load, then the verdict line."""

from __future__ import annotations

import pytest

from harness.model import (
    ExitCode,
    FaultRecord,
    LoadSummary,
    RunRecord,
    SloResult,
    Verdict,
    Window,
)
from harness.report import render_table

START = 1_767_225_600.0
WINDOW = Window("run", START, START + 62)

UPTIME = SloResult(
    name="api-availability", verdict=Verdict.PASS, value=1.0, objective=0.999, comparator=">=",
    window=WINDOW, detail="62 of 62 probes succeeded (100.000 %); objective ≥ 99.900 %",
    query='sum(sum_over_time(probe_success{job="probe-api"}[62s]))',
)  # fmt: skip
FAILOVER = SloResult(
    name="controller-failover", verdict=Verdict.PASS, value=4.2, objective=30.0,
    comparator="<=", window=Window("controller-leader-kill", START + 30, START + 50),
    detail="recovered in 4.2 s " + "x" * 100,
    query="max(refplat_controller_leader_first_reconcile_timestamp_seconds)",
)  # fmt: skip

RUN = RunRecord(
    run_id="run-1", profile="smoke", target="local", started_at=START, ended_at=START + 62,
    verdict=Verdict.PASS, exit_code=ExitCode.PASS, slos=(UPTIME, FAILOVER),
    faults=(FaultRecord("controller-leader-kill", "e.yaml", START + 30, START + 34.2,
                        Verdict.PASS),),
    load=LoadSummary(requests=1200, failures=3, p50_ms=12.0, p99_ms=80.0, rps=19.4),
)  # fmt: skip


def test_the_last_line_is_the_verdict_and_exit_code() -> None:
    assert "VERDICT: PASS (exit 0)" == render_table(RUN).splitlines()[-1]


@pytest.mark.parametrize(
    "expected",
    [
        pytest.param("100.000 %", id="share as percent"),
        pytest.param("≥ 99.900 %", id="share objective"),
        pytest.param("4.2 s", id="seconds with unit"),
        pytest.param("≤ 30.0 s", id="seconds objective"),
        pytest.param("controller-leader-kill", id="fault window"),
        pytest.param(
            "load: 1200 requests, 3 failures (0.25 %), p50 12 ms, p99 80 ms, 19.4 req/s",
            id="load summary",
        ),
    ],
)
def test_values_are_shown_as_people_read_them(expected: str) -> None:
    assert expected in render_table(RUN)


def test_long_details_are_truncated() -> None:
    line = next(line for line in render_table(RUN).splitlines() if "recovered in" in line)

    assert line.endswith("…")


def test_a_run_with_nothing_says_so() -> None:
    run = RunRecord("r", "smoke", "local", START, START + 1, Verdict.INVALID, ExitCode.INFRA,
                    errors=("target never became ready",))  # fmt: skip

    text = render_table(run)

    for expected in ("no SLO was judged", "no fault was injected", "load: none recorded",
                     "  - target never became ready", "VERDICT: INVALID (exit 2)"):  # fmt: skip
        assert expected in text
