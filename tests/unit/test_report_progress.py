"""The progress display: a rich panel on a terminal, plain rate-limited lines elsewhere."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from harness.report import NullProgress, Progress, ProgressSink
from harness.slo import LiveIndicators, SloSpec, load_slo_file
from tests.unit.test_slo_measure import ReplayedPrometheus as Replayed

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "fixtures/prometheus"

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SHOW_CURSOR = "\x1b[?25h"
VALUES = {"api-availability": "100.000 %", "p99": "12 ms", "requests": "412 (0 failed)"}


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, keeping what is written to it."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal_log() -> Iterator[tuple[logging.Logger, logging.StreamHandler[FakeTerminal]]]:
    """A logger whose handler writes to a (fake) terminal, as the CLI's handler does."""
    terminal = FakeTerminal()
    handler = logging.StreamHandler(terminal)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.progress")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def rendered(progress: Progress) -> str:
    console = Console(record=True, file=io.StringIO(), width=100, force_terminal=True)
    console.print(progress.panel())
    return console.export_text()


def test_the_panel_shows_run_phase_times_and_current_values() -> None:
    clock = FakeClock()
    with Progress(
        run_id="20261130-1200-ab12", total_s=300, stream=FakeTerminal(), clock=clock,
        auto_refresh=False,
    ) as progress:  # fmt: skip
        clock.now += 45
        progress.start_phase("baseline", 30)
        clock.now += 12
        progress.update(VALUES)

        text = rendered(progress)

    assert "harness run 20261130-1200-ab12" in text
    assert "baseline: 0:12 elapsed, 0:18 left" in text
    assert "0:57 elapsed, 4:03 left" in text
    for name, value in VALUES.items():
        assert re.search(rf"{re.escape(name)}\s+{re.escape(value)}", text), text


def test_a_phase_longer_than_planned_shows_how_much_over() -> None:
    clock = FakeClock()
    with Progress(
        run_id="r", total_s=None, stream=FakeTerminal(), clock=clock, auto_refresh=False
    ) as progress:
        progress.start_phase("fault controller-leader-kill", 10)
        clock.now += 75

        text = rendered(progress)

    assert "fault controller-leader-kill: 1:15 elapsed, 1:05 over" in text
    assert "1:15 elapsed" in text.split("run", 1)[1]
    assert "left" not in text.split("run", 1)[1]


def test_on_a_terminal_a_live_panel_is_drawn_and_the_terminal_restored(
    terminal_log: tuple[logging.Logger, logging.StreamHandler[FakeTerminal]],
) -> None:
    logger, handler = terminal_log
    terminal = handler.stream
    stdout = sys.stdout
    clock = FakeClock()

    with Progress(
        run_id="run-1", total_s=120, stream=terminal, clock=clock, auto_refresh=False, width=100
    ) as progress:
        assert progress.terminal
        progress.start_phase("warm-up", 60)
        clock.now += 20
        progress.update(VALUES)
        logger.info("fault injected: kill the controller leader")
        progress.log("experiment controller-leader-kill started")

    text = ANSI.sub("", terminal.getvalue())
    assert "harness run run-1" in text
    assert "warm-up: 0:20 elapsed, 0:40 left" in text
    assert "412 (0 failed)" in text
    assert "INFO fault injected: kill the controller leader" in text
    assert "experiment controller-leader-kill started" in text
    assert terminal.getvalue().endswith(SHOW_CURSOR) or SHOW_CURSOR in terminal.getvalue()
    assert handler.stream is terminal
    assert sys.stdout is stdout


def test_ctrl_c_inside_the_display_gives_the_terminal_and_log_streams_back(
    terminal_log: tuple[logging.Logger, logging.StreamHandler[FakeTerminal]],
) -> None:
    _, handler = terminal_log
    terminal = handler.stream
    stdout, stderr = sys.stdout, sys.stderr

    with (
        pytest.raises(KeyboardInterrupt),
        Progress(run_id="r", total_s=60, stream=terminal, auto_refresh=False) as progress,
    ):
        progress.start_phase("baseline", 30)
        assert handler.stream is not terminal  # routed through the console meanwhile
        raise KeyboardInterrupt

    assert handler.stream is terminal
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    assert SHOW_CURSOR in terminal.getvalue()
    written = len(terminal.getvalue())
    progress.update(VALUES)
    progress.log("after the end")
    assert written == len(terminal.getvalue())


def test_not_on_a_terminal_each_phase_is_one_plain_line() -> None:
    clock = FakeClock()
    out = io.StringIO()
    with Progress(run_id="r1", total_s=600, stream=out, clock=clock) as progress:
        progress.start_phase("warm-up", 30)
        clock.now += 30
        progress.start_phase("baseline", 90)
        clock.now += 90
        progress.start_phase("fault controller-leader-kill", None)
        progress.log("experiment controller-leader-kill: deviated")

    assert [
        "[r1] +0:00 phase warm-up for 0:30 (10:00 left in the run)",
        "[r1] +0:30 phase baseline for 1:30 (9:30 left in the run)",
        "[r1] +2:00 phase fault controller-leader-kill (8:00 left in the run)",
        "[r1] experiment controller-leader-kill: deviated",
    ] == out.getvalue().splitlines()


def test_not_on_a_terminal_values_are_written_at_most_once_every_period() -> None:
    clock = FakeClock()
    out = io.StringIO()
    progress = Progress(run_id="r1", total_s=None, stream=out, clock=clock, every_s=10)
    progress.start_phase("baseline", 60)
    for _ in range(25):  # the engine's 1 s loop
        progress.update({"p99": f"{clock.now - 1000:.0f} ms", "requests": "5 (0 failed)"})
        clock.now += 1
    progress.close()

    assert [
        "[r1] +0:00 phase baseline for 1:00",
        "[r1] +0:00 baseline: p99 0 ms; requests 5 (0 failed)",
        "[r1] +0:10 baseline: p99 10 ms; requests 5 (0 failed)",
        "[r1] +0:20 baseline: p99 20 ms; requests 5 (0 failed)",
    ] == out.getvalue().splitlines()
    assert "\x1b" not in out.getvalue()


def test_the_display_is_plain_when_the_stream_is_not_a_terminal() -> None:
    assert not Progress(run_id="r", total_s=1, stream=io.StringIO()).terminal
    assert Progress(run_id="r", total_s=1, stream=FakeTerminal()).terminal


def test_both_displays_satisfy_the_engine_seam() -> None:
    out = io.StringIO()
    sinks: list[ProgressSink] = [NullProgress(), Progress(run_id="r", total_s=1, stream=out)]
    for sink in sinks:
        sink.start_phase("deploy", None)
        sink.update({})
        sink.close()
        sink.close()

    assert "[r] +0:00 phase deploy (0:01 left in the run)\n" == out.getvalue()


def smoke_specs() -> tuple[SloSpec, ...]:
    return load_slo_file(REPO_ROOT / "slos/smoke.yaml") + load_slo_file(FIXTURES / "ratio-slo.yaml")


def recorded(name: str) -> tuple[Replayed, float, float]:
    """The replayed answers of a recorded run, its end and its length in seconds."""
    recording = json.loads((FIXTURES / f"{name}.json").read_text())
    window = recording["run_window"]
    return Replayed(recording["answers"]), window["end"], window["end"] - window["start"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param(
            "smoke-pass",
            {
                "api-availability": "100.000 %",
                "api-latency-p99": "0.235 s",
                "api-success-ratio": "100.000 %",
            },
            id="pass",
        ),
        pytest.param(
            "smoke-fail",
            {
                "api-availability": "95.238 %",
                "api-latency-p99": "2.42 s",
                "api-success-ratio": "90.000 %",
            },
            id="fail",
        ),
        pytest.param(
            "smoke-nodata",
            {
                "api-availability": "no data",
                "api-latency-p99": "no data",
                "api-success-ratio": "no data",
            },
            id="no-data",
        ),
    ],
)
def test_live_values_measure_each_slo_over_the_trailing_window(
    name: str, expected: dict[str, str]
) -> None:
    prom, end, length = recorded(name)
    live = LiveIndicators(prom, smoke_specs(), trailing_s=length)

    assert expected == live.values(end)
    assert all(at == end for _, at in prom.asked)


def test_recovery_and_engine_measured_slos_have_no_live_value() -> None:
    prom, end, length = recorded("smoke-pass")
    live = LiveIndicators(prom, smoke_specs(), trailing_s=length)

    values = live.values(end)

    assert "controller-failover" not in values
    assert "sessions-preserved" not in values
    assert not any("reconcile" in query for query, _ in prom.asked)


def test_live_values_are_queried_at_most_once_per_refresh_period() -> None:
    prom, end, length = recorded("smoke-pass")
    live = LiveIndicators(prom, smoke_specs(), trailing_s=length, refresh_s=5)
    first = live.values(end)
    asked = len(prom.asked)

    again = live.values(end + 4.9)

    assert (first, asked) == (again, len(prom.asked))
    live.values(end + 5)  # not recorded at that time: every query now fails
    assert len(prom.asked) > asked


def test_a_failing_query_shows_as_failed_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    prom, end, length = recorded("smoke-pass")
    live = LiveIndicators(prom, smoke_specs(), trailing_s=length + 1, refresh_s=0)

    with caplog.at_level(logging.WARNING, logger="harness.slo"):
        values = live.values(end)
        live.values(end + 1)

    assert {"query failed"} == set(values.values())
    assert 3 == len(caplog.records)
    assert "no recorded answer" in caplog.records[0].getMessage()


def test_live_slice_uptime_counts_the_good_slices_of_the_trailing_window() -> None:
    prom, end, length = recorded("resolution-fail")
    specs = load_slo_file(FIXTURES / "resolution-slos.yaml")
    live = LiveIndicators(prom, specs, trailing_s=length, scrape_interval_s=1.0)

    values = live.values(end)

    assert {
        "sparse-uptime": "97.222 %",
        "dense-slices": "91.429 %",
        "dense-slices-5s": "71.429 %",
        "requests-loose": "99.143 %",
    } == {name: values[name] for name in ("sparse-uptime", "dense-slices", "dense-slices-5s",
                                          "requests-loose")}  # fmt: skip
