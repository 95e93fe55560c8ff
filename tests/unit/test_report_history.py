"""Regression against history: a run against the median of the last runs of its profile."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from harness.config import load_settings
from harness.config._settings import RegressionSettings
from harness.engine._record import Outcome, build_record
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
from harness.report import compare_with_history, history_table, write_run_json
from harness.util.errors import ConfigError
from tests.conftest import REPO_ROOT

DAY0 = 1_796_000_000.1234567  # instants as time.time() gives them, finer than run.json prints
HOUR = 3600.0
SETTINGS = RegressionSettings()


def run(
    n: int,
    *,
    p99: float = 16.0,
    recovery: float | None = 3.2,
    failures: int = 0,
    availability: float = 1.0,
    verdict: Verdict = Verdict.PASS,
    profile: str = "smoke",
    target: str = "local",
) -> RunRecord:
    """The n-th smoke run, one an hour: what the engine records for a controller-leader kill."""
    t0 = DAY0 + n * HOUR
    injected = t0 + 26.0430661
    recovered = None if recovery is None else injected + recovery
    return RunRecord(
        run_id=f"run-{n:02d}",
        profile=profile,
        target=target,
        started_at=t0,
        ended_at=t0 + 47.3091234,
        verdict=verdict,
        exit_code=ExitCode.PASS if verdict is Verdict.PASS else ExitCode.INFRA,
        slos=(
            SloResult("api-availability", Verdict.PASS, availability, 0.999, ">=",
                      Window("run", t0 + 10.97, t0 + 44.07), samples=2084),
            SloResult("controller-failover", Verdict.PASS, recovery, 30.0, "<=",
                      Window("controller-leader-kill", injected, t0 + 44.07),
                      query="max(refplat_controller_leader_first_reconcile_timestamp_seconds)"),
            SloResult("api-latency-p99", Verdict.PASS, p99 / 1000, 0.5, "<=",
                      Window("run", t0 + 10.97, t0 + 44.07), severity="warn",
                      query="histogram_quantile(0.99, ...seconds_bucket...)"),
        ),
        faults=(
            FaultRecord("controller-leader-kill", "experiments/controller-leader-kill.yaml",
                        injected, recovered, Verdict.PASS, "on controller-2"),
        ),
        phases=(
            PhaseRecord("deploy", t0, t0 + 5.46),
            PhaseRecord("baseline", t0 + 15.97, t0 + 25.98),
            PhaseRecord("fault:controller-leader-kill", t0 + 26.0, t0 + 34.07),
        ),
        load=LoadSummary(
            requests=1000, failures=failures, p50_ms=6.0, p99_ms=p99, rps=18.2,
            by_phase={
                "deploy": LoadSummary(0, 0, None, None),
                "baseline": LoadSummary(400, 0, 6.0, 12.0, 18.3),
                "fault:controller-leader-kill": LoadSummary(300, failures, 7.0, p99, 18.1),
            },
        ),
        artifacts={"timeline": "timeline.jsonl"},
    )  # fmt: skip


def write(reports: Path, *runs: RunRecord) -> None:
    for record in runs:
        write_run_json(record, reports / record.run_id / "run.json")


def verdicts(results: tuple[SloResult, ...]) -> dict[str, Verdict]:
    return {result.name: result.verdict for result in results}


def by_name(results: tuple[SloResult, ...], name: str) -> SloResult:
    return next(result for result in results if result.name == name)


def compared(result: SloResult) -> list[str]:
    """The ids of the runs the result's baseline came from, as its detail names them."""
    return result.detail.split("runs: ")[1].split(", ")


def history(reports: Path, p99s: tuple[float, ...] = (15, 16, 16, 17, 16)) -> None:
    write(reports, *(run(n, p99=p99, recovery=3.0 + n / 10) for n, p99 in enumerate(p99s)))


def test_a_run_like_its_history_has_no_regression(tmp_path: Path) -> None:
    history(tmp_path)

    results = compare_with_history(run(9, p99=17.0), tmp_path, SETTINGS)

    expected = {
        "regression:load-p99": Verdict.PASS,
        "regression:load-p99:baseline": Verdict.PASS,
        "regression:load-p99:fault:controller-leader-kill": Verdict.PASS,
        "regression:failure-share": Verdict.PASS,
        "regression:recovery:controller-leader-kill": Verdict.PASS,
        "regression:slo:api-availability": Verdict.PASS,
        "regression:slo:controller-failover": Verdict.PASS,
        "regression:slo:api-latency-p99": Verdict.PASS,
    }
    assert expected == verdicts(results)


def test_a_p99_regression_names_metric_baseline_value_change_and_runs(tmp_path: Path) -> None:
    history(tmp_path)

    result = by_name(
        compare_with_history(run(9, p99=20.0), tmp_path, SETTINGS), "regression:load-p99"
    )

    expected = (
        Verdict.FAIL,
        "warn",
        20.0,
        "20 ms against a baseline of 16 ms (+25.0 %; allowed +20 %): the median load-p99 of 5 "
        "runs: run-00, run-01, run-02, run-03, run-04",
        5,
        {"baseline": 16.0, "limit": pytest.approx(19.2), "change_pct": 25.0},
    )
    actual = (
        result.verdict,
        result.severity,
        result.value,
        result.detail,
        result.samples,
        dict(result.stats),
    )
    assert expected == actual


def test_a_worsening_up_to_the_allowance_is_no_regression(tmp_path: Path) -> None:
    history(tmp_path)

    results = compare_with_history(run(9, p99=19.2), tmp_path, SETTINGS)

    assert Verdict.PASS == by_name(results, "regression:load-p99").verdict


@pytest.mark.parametrize(
    ("severity", "run_verdict"),
    [
        pytest.param("warn", Verdict.PASS, id="warn reports"),
        pytest.param("gate", Verdict.FAIL, id="gate fails"),
    ],
)
def test_a_regression_fails_the_run_only_as_a_gate(
    tmp_path: Path, severity: str, run_verdict: Verdict
) -> None:
    history(tmp_path / "reports")
    current = run(9, p99=20.0)
    settings = replace(SETTINGS, severity=severity)

    regressions = compare_with_history(current, tmp_path / "reports", settings)
    record = build_record(
        run_id=current.run_id,
        profile=current.profile,
        target=current.target,
        run_dir=tmp_path / "reports" / current.run_id,
        started=current.started_at,
        phases=current.phases,
        outcome=Outcome(
            slos=current.slos, regressions=regressions, faults=current.faults, load=current.load
        ),
    )

    assert (run_verdict, {severity}) == (record.verdict, {r.severity for r in regressions})


def test_a_slower_recovery_is_a_regression(tmp_path: Path) -> None:
    history(tmp_path)  # recoveries 3.0 to 3.4 s, median 3.2 s

    results = compare_with_history(run(9, recovery=4.5), tmp_path, SETTINGS)

    result = by_name(results, "regression:recovery:controller-leader-kill")
    expected = (
        Verdict.FAIL,
        "controller-leader-kill",
        "4.5 s against a baseline of 3.2 s (+40.6 %; allowed +20 %): the median "
        "recovery:controller-leader-kill of 5 runs: run-00, run-01, run-02, run-03, run-04",
    )
    assert expected == (result.verdict, result.window.name, result.detail)


def test_more_failed_requests_are_a_regression_in_points(tmp_path: Path) -> None:
    history(tmp_path)

    results = compare_with_history(run(9, failures=15), tmp_path, SETTINGS)

    result = by_name(results, "regression:failure-share")
    expected = (
        Verdict.FAIL,
        "1.50 % against a baseline of 0.00 % (+1.50 points; allowed +1.00 points)",
        {"baseline": 0.0, "limit": 0.01, "change": 0.015},
    )
    assert expected == (result.verdict, result.detail.split(":")[0], dict(result.stats))


def test_a_share_slo_that_drops_and_a_latency_that_rises_are_regressions(tmp_path: Path) -> None:
    history(tmp_path)

    results = compare_with_history(run(9, p99=30.0, availability=0.75), tmp_path, SETTINGS)

    expected = {
        "regression:slo:api-availability": Verdict.FAIL,
        "regression:slo:api-latency-p99": Verdict.FAIL,
    }
    assert expected == {name: verdicts(results)[name] for name in expected}


def test_too_few_runs_compare_nothing_and_say_so(tmp_path: Path) -> None:
    write(tmp_path, run(0), run(1))

    results = compare_with_history(run(9, p99=100.0), tmp_path, SETTINGS)

    expected = (
        ("regression", Verdict.SKIPPED, 2),
        "2 earlier runs of profile smoke on target local in "
        f"{tmp_path} (run-00, run-01), 3 needed (INVALID runs do not count); nothing compared",
    )
    assert expected == (
        (results[0].name, results[0].verdict, results[0].samples),
        results[0].detail,
    )
    assert 1 == len(results)


def test_a_missing_reports_directory_is_too_few_runs(tmp_path: Path) -> None:
    results = compare_with_history(run(9), tmp_path / "nowhere", SETTINGS)

    assert [Verdict.SKIPPED] == [result.verdict for result in results]


def test_skipped_regressions_alone_never_make_a_run_pass(tmp_path: Path) -> None:
    current = run(9)
    regressions = compare_with_history(current, tmp_path, replace(SETTINGS, severity="gate"))

    record = build_record(
        run_id=current.run_id,
        profile="smoke",
        target="local",
        run_dir=tmp_path,
        started=current.started_at,
        phases=(),
        outcome=Outcome(regressions=regressions),
    )

    assert Verdict.INCONCLUSIVE == record.verdict


def test_invalid_runs_are_left_out_of_the_baseline(tmp_path: Path) -> None:
    history(tmp_path, p99s=(15, 16, 17))
    write(tmp_path, *(run(n, p99=500.0, verdict=Verdict.INVALID) for n in (3, 4, 5)))

    result = by_name(
        compare_with_history(run(9, p99=17.0), tmp_path, SETTINGS), "regression:load-p99"
    )

    assert (Verdict.PASS, 3, 16.0) == (result.verdict, result.samples, result.stats["baseline"])


def test_invalid_runs_do_not_count_towards_the_minimum(tmp_path: Path) -> None:
    write(tmp_path, run(0), run(1), run(2, verdict=Verdict.INVALID))

    results = compare_with_history(run(9), tmp_path, SETTINGS)

    assert [("regression", Verdict.SKIPPED)] == [(r.name, r.verdict) for r in results]


@pytest.mark.parametrize(
    "other",
    [
        pytest.param({"profile": "nightly"}, id="other profile"),
        pytest.param({"target": "kube"}, id="other target"),
    ],
)
def test_runs_of_other_profiles_and_targets_are_ignored(
    tmp_path: Path, other: dict[str, str]
) -> None:
    history(tmp_path, p99s=(15, 16, 17))
    write(tmp_path, *(run(n, p99=2.0, **other) for n in (4, 5, 6)))  # type: ignore[arg-type]

    result = by_name(
        compare_with_history(run(9, p99=18.0), tmp_path, SETTINGS), "regression:load-p99"
    )

    assert (Verdict.PASS, ["run-00", "run-01", "run-02"]) == (result.verdict, compared(result))


def test_only_the_last_runs_before_this_one_make_the_baseline(tmp_path: Path) -> None:
    write(tmp_path, run(0, p99=100.0), run(1, p99=100.0))  # older than the last 5
    history_runs = (run(n, p99=16.0) for n in range(2, 7))
    write(tmp_path, *history_runs, run(12, p99=1.0), run(13, p99=1.0))  # later than this run

    result = by_name(
        compare_with_history(run(9, p99=16.0), tmp_path, SETTINGS), "regression:load-p99"
    )

    expected = (Verdict.PASS, ["run-02", "run-03", "run-04", "run-05", "run-06"])
    assert expected == (result.verdict, compared(result))


def test_an_unreadable_run_json_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    history(tmp_path, p99s=(15, 16, 17))
    truncated, damaged = tmp_path / "run-07" / "run.json", tmp_path / "run-08" / "run.json"
    truncated.parent.mkdir()
    truncated.write_text('{"schema_version": 1, "run_id": ')
    write_run_json(run(8), damaged)
    damaged.write_text(damaged.read_text().replace('"verdict": "PASS"', '"verdict": "MAYBE"'))

    with caplog.at_level(logging.WARNING, logger="harness.report"):
        results = compare_with_history(run(9, p99=30.0), tmp_path, SETTINGS)

    result = by_name(results, "regression:load-p99")
    warned = [r.getMessage().removeprefix("history: skipping a run.json that does not read: ")
              for r in caplog.records]  # fmt: skip
    reasons = [f"{truncated}: cannot read it as JSON", f"{damaged}: key 'verdict' should be one of"]
    starts = [text[: len(reason)] for text, reason in zip(warned, reasons, strict=False)]
    expected = (Verdict.FAIL, ["run-00", "run-01", "run-02"], reasons)
    assert expected == (result.verdict, compared(result), starts)


def test_a_fault_new_to_the_history_is_not_compared(tmp_path: Path) -> None:
    history(tmp_path)
    current = run(9)
    new_fault = replace(current.faults[0], name="api-replica-kill")
    current = replace(current, faults=(*current.faults, new_fault))

    results = compare_with_history(current, tmp_path, SETTINGS)

    result = by_name(results, "regression:recovery:api-replica-kill")

    assert (Verdict.SKIPPED, 0) == (result.verdict, result.samples)


def test_an_invalid_run_is_not_compared(tmp_path: Path) -> None:
    history(tmp_path)

    results = compare_with_history(run(9, verdict=Verdict.INVALID), tmp_path, SETTINGS)

    assert [("regression", Verdict.SKIPPED)] == [(r.name, r.verdict) for r in results]


def test_a_profile_sets_the_regression_section(tmp_path: Path) -> None:
    path = tmp_path / "strict.yaml"
    path.write_text("name: strict\nregression: {history: 10, p99_increase: 0.1, severity: gate}\n")

    settings = load_settings(str(path), repo_root=REPO_ROOT, env={}, overrides=[])

    expected = RegressionSettings(history=10, p99_increase=0.1, severity="gate")
    assert expected == settings.regression


def test_bad_regression_settings_name_the_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nregression:\n  min_runs: 0\n  severity: fail\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), repo_root=REPO_ROOT, env={}, overrides=[])

    expected = [
        f"{path}:3: field 'regression.min_runs': must be ≥ 1, got 0; raise it.",
        f"{path}:4: field 'regression.severity': must be one of warn, gate, got 'fail'; "
        "pick one of them.",
    ]
    assert expected == caught.value.problems


def harness_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_history_command_prints_the_trend_of_the_last_runs(tmp_path: Path) -> None:
    history(tmp_path, p99s=(15, 16, 17, 18))
    write(tmp_path, run(5, p99=40.0, recovery=None, failures=20, verdict=Verdict.FAIL))
    write(tmp_path, run(6, profile="nightly"))

    done = harness_cli(
        "history", "--profile", "smoke", "--reports-dir", str(tmp_path), "--last", "3"
    )

    expected = [
        f"profile smoke: the last 3 of 5 runs in {tmp_path}",
        "after FAILURES: each fault's recovery (its slowest injection), each gating SLO's value",
        "",
        "RUN     TARGET  VERDICT  P99    FAILURES     "
        "controller-leader-kill  api-availability  controller-failover",
        "run-02  local   PASS     17 ms  0 (0.00 %)   "
        "3.2 s                   100.000 %         3.2 s",
        "run-03  local   PASS     18 ms  0 (0.00 %)   "
        "3.3 s                   100.000 %         3.3 s",
        "run-05  local   FAIL     40 ms  20 (2.00 %)  "
        "none                    100.000 %         no data",
    ]
    assert (0, expected) == (done.returncode, done.stdout.splitlines())


def test_the_trend_table_defaults_to_the_newest_runs_profile(tmp_path: Path) -> None:
    write(tmp_path, run(0), run(1, profile="nightly"))

    table = history_table(tmp_path, profile=None, last=10)

    assert f"profile nightly: the last 1 of 1 runs in {tmp_path}" == table.splitlines()[0]


def test_the_history_command_exits_3_when_there_are_no_runs(tmp_path: Path) -> None:
    done = harness_cli("history", "--reports-dir", str(tmp_path))

    expected = (
        3,
        "",
        f"harness history: {tmp_path}: no run.json in any run directory; run `harness certify` "
        "first or pass --reports-dir with the directory your runs went to.\n",
    )
    assert expected == (done.returncode, done.stdout, done.stderr)


def test_the_trend_table_of_an_unknown_profile_lists_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, run(0))

    with pytest.raises(ConfigError, match="no run of profile nightly; the runs there are of smoke"):
        history_table(tmp_path, profile="nightly", last=5)
