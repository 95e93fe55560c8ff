"""The HTML page: one self-contained file with the verdict, SLOs, timeline, plots and load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.model import (
    ExitCode,
    FaultRecord,
    LoadSummary,
    PhaseRecord,
    RunRecord,
    SloResult,
    Verdict,
    Window,
)
from harness.report import render_html, write_html
from harness.report._plots import fault_span

START = 1_767_225_600.0
END = START + 60
PNG = "data:image/png;base64,"
EXPERIMENT = "experiments/controller-leader-kill.yaml"
PHASES = tuple(
    PhaseRecord(name, START + start, START + end)
    for name, start, end in [
        ("deploy", 0, 5),
        ("warm-up", 5, 10),
        ("baseline", 10, 25),
        ("fault:controller-leader-kill", 25, 40),
        ("recovery", 40, 55),
        ("evaluate", 55, 60),
    ]
)


def make_run(*, passed: bool = True, recovered: bool = True, detail: str = "") -> RunRecord:
    """A run of the smoke profile; a FAIL run lost probes and never recovered its fault."""
    verdict = Verdict.PASS if passed else Verdict.FAIL
    window = Window("run", START + 5, START + 55)
    uptime = SloResult(
        name="api-availability", verdict=verdict, value=1.0 if passed else 0.9, objective=0.999,
        comparator=">=", window=window, detail=detail or "50 of 50 probes succeeded",
    )  # fmt: skip
    failover = SloResult(
        name="controller-failover", verdict=verdict, value=4.2 if recovered else None,
        objective=30.0, comparator="<=", window=Window("controller-leader-kill", START + 25,
        START + 40), detail="recovered in 4.2 s" if recovered else "never recovered",
        query="max(refplat_controller_leader_first_reconcile_timestamp_seconds)",
    )  # fmt: skip
    fault = FaultRecord(
        "controller-leader-kill", EXPERIMENT, START + 26, START + 30.2 if recovered else None,
        Verdict.PASS if recovered else Verdict.FAIL, "SIGKILL to leader epoch 1",
    )  # fmt: skip
    phase_load = LoadSummary(requests=300, failures=0 if passed else 30, p50_ms=3.0, p99_ms=9.0)
    load = LoadSummary(
        requests=1200, failures=0 if passed else 30, p50_ms=3.0, p99_ms=7.0, rps=20.0,
        by_phase={"baseline": phase_load, "fault:controller-leader-kill": phase_load},
    )  # fmt: skip
    return RunRecord(
        run_id="20260101-000000-abcd", profile="smoke", target="local", started_at=START,
        ended_at=END, verdict=verdict, exit_code=ExitCode.PASS if passed else ExitCode.FAIL,
        slos=(uptime, failover), faults=(fault,), phases=PHASES, load=load,
        artifacts={"timeline": "timeline.jsonl", "series": "series.json"},
        errors=() if passed else ("locust: 30 requests failed <see log>",),
    )  # fmt: skip


def write_series(path: Path) -> Path:
    """A series.json with three panels, one of them a failed query with no points."""
    times = [START + 5 + t for t in range(50)]
    probe = [[t, 0.0 if START + 27 <= t < START + 30 else 1.0] for t in times]
    latency = [{"label": q, "query": "q", "points": [[t, v] for t in times]}
               for q, v in (("p50", 0.003), ("p99", 0.012))]  # fmt: skip
    data = {
        "window": {"start": START + 5, "end": START + 55},
        "step_s": 1.0,
        "panels": [
            {"name": "api-availability", "title": "API probe success", "unit": "ratio",
             "series": [{"label": "probe_success", "query": "q", "points": probe}]},
            {"name": "api-latency", "title": "API latency", "unit": "seconds", "series": latency},
            {"name": "api-requests", "title": "Requests", "unit": "req/s",
             "series": [{"label": "{code}", "query": "q", "error": "timed out", "points": []}]},
        ],
    }  # fmt: skip
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def series(tmp_path: Path) -> Path:
    return write_series(tmp_path / "series.json")


@pytest.mark.parametrize(
    ("passed", "badge"),
    [
        pytest.param(
            True, "<div id='verdict' class='badge PASS'>PASS<small>exit code 0", id="pass"
        ),
        pytest.param(
            False, "<div id='verdict' class='badge FAIL'>FAIL<small>exit code 1", id="fail"
        ),
    ],
)
def test_the_badge_shows_the_verdict_and_exit_code(passed: bool, badge: str) -> None:
    assert badge in render_html(make_run(passed=passed), series_path=None)


@pytest.mark.parametrize("passed", [pytest.param(True, id="pass"), pytest.param(False, id="fail")])
def test_every_slo_has_a_row_with_its_name(passed: bool) -> None:
    page = render_html(make_run(passed=passed), series_path=None)
    assert 2 == page.count("<tr class='slo'>")
    assert "<td class='name'>api-availability</td>" in page
    assert "<td class='name'>controller-failover</td>" in page


def test_values_are_shown_as_people_read_them() -> None:
    page = render_html(make_run(), series_path=None)
    for expected in ("100.000 %", "≥ 99.900 %", "4.2 s", "≤ 30.0 s", "+26.0 s"):
        assert expected in page


def test_text_from_the_run_is_escaped() -> None:
    page = render_html(make_run(detail="<script>alert('x')</script>"), series_path=None)
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


def test_the_timeline_and_each_panel_are_embedded_as_png(series: Path) -> None:
    page = render_html(make_run(), series_path=series)
    assert 1 + 3 == page.count(PNG)
    assert "<figure id='panel-api-latency'>" in page


def test_a_failed_query_is_noted_under_its_panel(series: Path) -> None:
    assert "query failed: timed out" in render_html(make_run(), series_path=series)


@pytest.mark.parametrize(
    "series_path",
    [pytest.param(None, id="no series file given"), pytest.param(Path("/nonexistent"), id="gone")],
)
def test_without_series_the_page_says_so_and_shows_only_the_timeline(
    series_path: Path | None,
) -> None:
    page = render_html(make_run(), series_path=series_path)
    assert 1 == page.count(PNG)
    assert "No series.json was saved for this run" in page


def test_a_damaged_series_file_is_noted_not_raised(tmp_path: Path) -> None:
    damaged = tmp_path / "series.json"
    damaged.write_text("{not json")
    page = render_html(make_run(), series_path=damaged)
    assert 1 == page.count(PNG)
    assert "cannot read it as JSON" in page


@pytest.mark.parametrize("passed", [pytest.param(True, id="pass"), pytest.param(False, id="fail")])
def test_the_page_fetches_nothing(series: Path, passed: bool) -> None:
    page = render_html(make_run(passed=passed, recovered=passed), series_path=series)
    assert "http://" not in page
    assert "https://" not in page
    assert "<link" not in page
    assert "default-src 'none'" in page


def test_an_unrecovered_fault_lasts_to_the_end_of_its_phase(series: Path) -> None:
    run = make_run(passed=False, recovered=False)
    assert (START + 26, START + 40, False) == fault_span(run, run.faults[0])
    page = render_html(run, series_path=series)
    assert "not recovered" in page
    assert 4 == page.count(PNG)


def test_a_recovered_fault_lasts_until_it_recovered() -> None:
    run = make_run()
    assert (START + 26, START + 30.2, True) == fault_span(run, run.faults[0])


def test_load_has_a_row_for_the_run_and_each_phase() -> None:
    page = render_html(make_run(), series_path=None)
    for name in ("whole run", "baseline", "fault:controller-leader-kill"):
        assert f"<tr><td>{name}</td>" in page
    assert "<td class='num'>1200</td>" in page


def test_errors_are_listed_escaped_and_artifacts_linked_relatively() -> None:
    page = render_html(make_run(passed=False), series_path=None)
    assert "<li>locust: 30 requests failed &lt;see log&gt;</li>" in page
    assert "<a href='timeline.jsonl'>timeline</a>" in page


def test_a_passing_run_has_no_errors_section() -> None:
    assert "id='errors'" not in render_html(make_run(), series_path=None)


def test_a_dollar_sign_in_a_label_is_drawn_as_text(tmp_path: Path) -> None:
    path = write_series(tmp_path / "series.json")
    data = json.loads(path.read_text())
    data["panels"][0]["series"][0]["label"] = "cost $5 and $6"
    path.write_text(json.dumps(data))
    assert 4 == render_html(make_run(), series_path=path).count(PNG)


def test_write_html_writes_the_page_whole_and_returns_its_path(series: Path) -> None:
    out = series.parent / "report.html"
    assert out == write_html(make_run(), series_path=series, out=out)
    assert out.read_text(encoding="utf-8").endswith("</html>\n")
    assert ["report.html", "series.json"] == sorted(p.name for p in series.parent.iterdir())
