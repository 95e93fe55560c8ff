"""JUnit XML: one testsuite per run, one testcase per SLO result and per fault."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from harness.model import ExitCode, FaultRecord, RunRecord, SloResult, Verdict, Window
from harness.report import write_junit

START = 1_767_225_600.0
WINDOW = Window("run", START, START + 60)


def slo(name: str, verdict: Verdict) -> SloResult:
    return SloResult(
        name=name, verdict=verdict, value=0.5, objective=1.0, comparator="<=", window=WINDOW,
        detail=f"{name} detail",
    )  # fmt: skip


RUN = RunRecord(
    run_id="run-1",
    profile="smoke",
    target="local",
    started_at=START,
    ended_at=START + 60,
    verdict=Verdict.INVALID,
    exit_code=ExitCode.INFRA,
    slos=(
        slo("passes", Verdict.PASS),
        slo("fails", Verdict.FAIL),
        slo("invalid", Verdict.INVALID),
        slo("undecided", Verdict.INCONCLUSIVE),
    ),
    faults=(
        FaultRecord("kill", "e.yaml", START + 30, START + 34, Verdict.PASS),
        FaultRecord("partition", "p.yaml", None, None, Verdict.SKIPPED, "needs root"),
    ),
)


def parsed(tmp_path: Path, run: RunRecord = RUN) -> ET.Element:
    path = tmp_path / "junit.xml"
    write_junit(run, path)
    return ET.parse(path).getroot()


def test_one_suite_holds_a_case_per_slo_and_per_fault(tmp_path: Path) -> None:
    root = parsed(tmp_path)

    suites = root.findall("testsuite")
    assert 1 == len(suites)
    names = [case.get("name") for case in suites[0].iter("testcase")]
    assert [
        "passes [run]", "fails [run]", "invalid [run]", "undecided [run]", "kill", "partition",
    ] == names  # fmt: skip


def test_the_suite_counts_failures_errors_and_skips(tmp_path: Path) -> None:
    suite = parsed(tmp_path).find("testsuite")
    assert suite is not None

    expected = {"tests": "6", "failures": "1", "errors": "1", "skipped": "2"}
    assert expected == {key: suite.get(key) for key in expected}


def test_each_verdict_maps_to_its_junit_element(tmp_path: Path) -> None:
    suite = parsed(tmp_path).find("testsuite")
    assert suite is not None

    outcomes = {case.get("name"): [child.tag for child in case] for case in suite.iter("testcase")}
    expected = {
        "passes [run]": [],
        "fails [run]": ["failure"],
        "invalid [run]": ["error"],
        "undecided [run]": ["skipped"],
        "kill": [],
        "partition": ["skipped"],
    }
    assert expected == outcomes


def test_a_failure_carries_the_detail_as_its_message(tmp_path: Path) -> None:
    failure = parsed(tmp_path).find("testsuite/testcase[@name='fails [run]']/failure")
    assert failure is not None

    assert "FAIL: 0.5; fails detail" == failure.get("message")


def test_run_errors_become_error_cases(tmp_path: Path) -> None:
    run = RunRecord(
        "r", "smoke", "local", START, START + 1, Verdict.INVALID, ExitCode.INFRA,
        errors=("prometheus never became ready",),
    )  # fmt: skip

    suite = parsed(tmp_path, run).find("testsuite")
    assert suite is not None

    assert ("1", "1") == (suite.get("tests"), suite.get("errors"))
