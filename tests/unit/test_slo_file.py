"""Loading SLO files: the smoke file parses; every problem is reported with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.slo import Comparator, IndicatorKind, SloSpec, load_slo_file, promql_problems
from harness.util.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
slos:
  - name: latency
    indicator: {kind: threshold, promql: "max(x[$window])"}
    objective: 0.5
    comparator: "<="
"""


def load_text(tmp_path: Path, text: str) -> tuple[SloSpec, ...]:
    path = tmp_path / "slos.yaml"
    path.write_text(text)
    return load_slo_file(path, origin="slos.yaml")


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, text)
    return caught.value.problems


def test_the_smoke_file_declares_four_gating_slos() -> None:
    specs = load_slo_file(REPO_ROOT / "slos/smoke.yaml")

    expected = [
        ("api-availability", IndicatorKind.PROBE_UPTIME, Comparator.GE, "run"),
        ("controller-failover", IndicatorKind.RECOVERY_TIME, Comparator.LE, "each-fault"),
        ("api-latency-p99", IndicatorKind.THRESHOLD, Comparator.LE, "run"),
        ("sessions-preserved", IndicatorKind.SESSIONS_PRESERVED, Comparator.GE, "each-fault"),
    ]
    assert expected == [(s.name, s.indicator.kind, s.comparator, s.window) for s in specs]


def test_window_and_severity_have_defaults(tmp_path: Path) -> None:
    (spec,) = load_text(tmp_path, GOOD)

    assert ("run", "gate", "slos.yaml:2") == (spec.window, spec.severity, spec.source)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            GOOD.replace("threshold", "thresold"),
            "slos.yaml:3: field 'slos[0].indicator.kind': must be one of ratio, threshold, "
            "probe-uptime, slice-uptime, recovery-time, mttr, sessions-preserved, "
            "got 'thresold'; pick one.",
            id="unknown kind",
        ),
        pytest.param(
            GOOD.replace("    objective: 0.5\n", ""),
            "slos.yaml:2: field 'slos[0].objective': missing; add 'objective:' to this SLO.",
            id="missing objective",
        ),
        pytest.param(
            GOOD.replace('"<="', '"=<"'),
            "slos.yaml:5: field 'slos[0].comparator': must be one of >=, <=, >, <, got '=<'; "
            "pick one.",
            id="bad comparator",
        ),
        pytest.param(
            GOOD.replace("max(x[$window])", "max(x[$window]"),
            "slos.yaml:3: field 'slos[0].indicator.promql': malformed PromQL: '(' at column 4 "
            "is never closed; fix the query.",
            id="unclosed parenthesis",
        ),
        pytest.param(
            GOOD.replace("max(x[$window])", "max(x{job='a}[$window])"),
            "slos.yaml:3: field 'slos[0].indicator.promql': malformed PromQL: a string opened "
            "with ' is never closed; fix the query.",
            id="unclosed string",
        ),
        pytest.param(
            GOOD.replace("max(x[$window])", "max(x[5m])"),
            "slos.yaml:3: field 'slos[0].indicator.promql': a threshold query must use $window "
            "as its range (for example [$window]); add it.",
            id="threshold without window",
        ),
        pytest.param(
            GOOD.replace("objective: 0.5", "objective: fast"),
            "slos.yaml:4: field 'slos[0].objective': expected a number, got 'fast'; write one.",
            id="objective not a number",
        ),
        pytest.param(
            GOOD + "    windo: run\n",
            "slos.yaml:6: field 'slos[0].windo': unknown key; did you mean 'window'?",
            id="unknown key",
        ),
        pytest.param(
            "slos:\n  - name: up\n    indicator: {kind: probe-uptime, job: p}\n"
            "    objective: 99.9\n    comparator: '>='\n",
            "slos.yaml:4: field 'slos[0].objective': a probe-uptime objective is a share between "
            "0 and 1, got 99.9; write 0.999 for 99.9 %.",
            id="share given as percent",
        ),
        pytest.param(
            "slos:\n  - name: r\n    indicator: {kind: recovery-time, promql: 'max(t)'}\n"
            "    objective: 30\n    comparator: '<='\n",
            "slos.yaml:3: field 'slos[0].indicator.fault': missing; a recovery-time indicator "
            "needs 'fault'.",
            id="recovery without fault",
        ),
        pytest.param(
            "- a\n",
            "slos.yaml:1: expected a mapping with a list under 'slos'; start the file with "
            "'slos:' followed by '- name: ...' items.",
            id="not a mapping",
        ),
    ],
)
def test_a_bad_slo_file_names_the_line_of_the_problem(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert [expected] == problems_of(tmp_path, text)


def test_duplicate_names_point_at_both_declarations(tmp_path: Path) -> None:
    text = GOOD + GOOD.removeprefix("slos:\n")

    expected = [
        "slos.yaml:6: field 'slos[1].name': duplicate SLO name 'latency' (first declared on "
        "line 2); rename one."
    ]
    assert expected == problems_of(tmp_path, text)


def test_every_problem_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace('"<="', '"=="') + "  - name: Bad Name\n    indicator: {kind: x}\n"

    assert 5 == len(problems_of(tmp_path, text))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param('sum by (le) (rate(x{a="}"}[5m]))', [], id="brace inside a string"),
        pytest.param("rate(x[5m]))", ["')' at column 12 closes nothing that is open"], id="extra"),
        pytest.param("x{a='b'", ["'{' at column 2 is never closed"], id="open brace"),
        pytest.param("rate(x[5m)]", ["')' at column 10 closes nothing that is open"], id="crossed"),
        pytest.param("  ", ["the query is empty"], id="empty"),
    ],
)
def test_promql_brackets_and_strings_are_checked(query: str, expected: list[str]) -> None:
    assert expected == promql_problems(query)
