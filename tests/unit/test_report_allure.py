"""Allure results rendered from a run directory, and the plugin's Allure steps with pytester.

The run directories are written the way a certification run writes them: run.json from a
RunRecord, a Chaos Toolkit journal, Locust statistics and series.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
from harness.report import write_allure_results, write_run_json
from harness.util.errors import ConfigError
from tests.unit.test_pytest_plugin import FAKE_PROMETHEUS, INNER_INI, SLO_FILE, write_fake_target

pytest_plugins = ["pytester"]

START = 1_767_225_600.0
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUERY = 'sum(sum_over_time(probe_success{job="probe-api"}[50s]))'
JOURNAL = {"status": "completed", "deviated": False, "run": [{"activity": {"name": "kill"}}]}
PHASES = (
    ("deploy", 0, 5),
    ("warm-up", 5, 10),
    ("baseline", 10, 25),
    ("fault:controller-leader-kill", 25, 40),
    ("recovery", 40, 55),
    ("evaluate", 55, 60),
)


def make_run(verdict: Verdict = Verdict.PASS, *, skipped_fault: bool = False) -> RunRecord:
    """A smoke run whose SLOs and fault all carry ``verdict``."""
    run_window = Window("run", START + 5, START + 55)
    slos = (
        SloResult("api-availability", verdict, 0.98, 0.999, ">=", run_window,
                  detail="49 of 50 probes succeeded", query=QUERY, samples=50,
                  stats={"budget_s": 0.05}),
        SloResult("controller-failover", verdict, 4.2, 30.0, "<=",
                  Window("controller-leader-kill", START + 26, START + 40),
                  detail="recovered in 4.2 s", query="max(refplat_controller_epoch)"),
    )  # fmt: skip
    faults = [
        FaultRecord("controller-leader-kill", "experiments/controller-leader-kill.yaml",
                    START + 26, START + 30.2, verdict, "SIGKILL to leader epoch 1"),
    ]  # fmt: skip
    if skipped_fault:
        lacks = "skipped: the target lacks region-outage"
        faults.append(FaultRecord("region-outage", "x/region-outage.yaml", None, None,
                                  Verdict.SKIPPED, lacks))  # fmt: skip
    by_name = {"GET /v1/servers": {"requests": 300.0, "failures": 2.0, "p50_ms": 3.0}}
    phase_load = LoadSummary(requests=300, failures=2, p50_ms=3.0, p99_ms=9.0, rps=20.0,
                             by_name=by_name)  # fmt: skip
    by_phase = {"baseline": phase_load, "fault:controller-leader-kill": phase_load}
    load = LoadSummary(requests=1200, failures=2, p50_ms=3.0, p99_ms=7.0, rps=20.0,
                       by_name=by_name, by_phase=by_phase)  # fmt: skip
    return RunRecord(
        run_id="20260101-000000-abcd", profile="smoke", target="local", started_at=START,
        ended_at=START + 60, verdict=verdict, exit_code=ExitCode.PASS, slos=slos,
        faults=tuple(faults), phases=tuple(PhaseRecord(n, START + a, START + b)
                                           for n, a, b in PHASES),
        load=load, errors=() if verdict is Verdict.PASS else ("locust: 2 requests failed",),
        artifacts={"series": "series.json", "locust_stats": "locust/locust-stats.json",
                   "journal:controller-leader-kill": "chaos/controller-leader-kill.journal.json"},
    )  # fmt: skip


def write_run_dir(where: Path, run: RunRecord) -> Path:
    """A run directory as `harness certify` leaves it, without the processes' files."""
    write_run_json(run, where / "run.json")
    (where / "chaos").mkdir()
    (where / "chaos" / "controller-leader-kill.journal.json").write_text(json.dumps(JOURNAL))
    (where / "locust").mkdir()
    (where / "locust" / "locust-stats.json").write_text('[{"name": "GET /v1/servers"}]')
    times = [START + 5 + t for t in range(50)]
    series = {
        "window": {"start": START + 5, "end": START + 55},
        "step_s": 1.0,
        "panels": [
            {"name": "api-availability", "title": "API probes", "unit": "ratio",
             "series": [{"label": "probe_success", "query": "min(probe_success)",
                         "points": [[t, 0.0 if t == START + 27 else 1.0] for t in times]}]},
            {"name": "controller-epoch", "title": "Leader epoch", "unit": "epoch",
             "series": [{"label": "epoch", "query": "max(refplat_controller_epoch)",
                         "points": [[t, 1.0 if t < START + 30 else 2.0] for t in times]}]},
        ],
    }  # fmt: skip
    (where / "series.json").write_text(json.dumps(series))
    return where


def read_results(out: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*-result.json"))]


def steps_named(steps: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [s for s in steps if s["name"].startswith(prefix)]


def attachment(out: Path, owner: dict[str, Any], name: str) -> bytes:
    found = [a for a in owner["attachments"] if a["name"] == name]
    assert 1 == len(found), [a["name"] for a in owner["attachments"]]
    return (out / found[0]["source"]).read_bytes()


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run_dir(tmp_path, make_run())


def test_a_run_is_one_result_named_after_its_profile_with_a_step_per_phase(run_dir: Path) -> None:
    out = write_allure_results(run_dir)
    assert run_dir / "allure-results" == out
    [result] = read_results(out)
    assert ("smoke", "passed", "finished") == (result["name"], result["status"], result["stage"])
    phases = steps_named(result["steps"], "phase ")
    assert [f"phase {name}" for name, _, _ in PHASES] == [s["name"] for s in phases]
    expected = [(round((START + a) * 1000), round((START + b) * 1000)) for _, a, b in PHASES]
    assert expected == [(s["start"], s["stop"]) for s in phases]
    assert (round(START * 1000), round((START + 60) * 1000)) == (result["start"], result["stop"])


@pytest.mark.parametrize(
    ("verdict", "status"),
    [
        (Verdict.PASS, "passed"),
        (Verdict.FAIL, "failed"),
        (Verdict.INVALID, "broken"),
        (Verdict.INCONCLUSIVE, "skipped"),
    ],
    ids=["pass-passed", "fail-failed", "invalid-broken", "inconclusive-skipped"],
)
def test_the_verdict_gives_the_status_of_the_run_its_slos_and_its_fault(
    tmp_path: Path, verdict: Verdict, status: str
) -> None:
    out = write_allure_results(write_run_dir(tmp_path, make_run(verdict)))
    [result] = read_results(out)
    slo_steps = steps_named(result["steps"], "SLO ")
    [fault_phase] = steps_named(result["steps"], "phase fault:")
    assert [status, status, status, status] == [
        result["status"], *(s["status"] for s in slo_steps), fault_phase["status"]
    ]  # fmt: skip
    if verdict is not Verdict.PASS:
        assert result["statusDetails"]["message"].startswith(f"{verdict}: ")


def test_the_fault_step_sits_in_its_phase_with_the_chaos_toolkit_journal(run_dir: Path) -> None:
    out = write_allure_results(run_dir)
    [result] = read_results(out)
    [phase] = steps_named(result["steps"], "phase fault:controller-leader-kill")
    [fault] = phase["steps"]
    assert "fault controller-leader-kill" == fault["name"]
    assert (round((START + 26) * 1000), round((START + 30.2) * 1000)) == (
        fault["start"], fault["stop"]
    )  # fmt: skip
    journal = attachment(out, fault, "Chaos Toolkit journal (controller-leader-kill)")
    assert JOURNAL == json.loads(journal)


def test_a_skipped_fault_without_a_phase_is_a_skipped_step_of_its_own(tmp_path: Path) -> None:
    out = write_allure_results(write_run_dir(tmp_path, make_run(skipped_fault=True)))
    [result] = read_results(out)
    [step] = steps_named(result["steps"], "fault region-outage")
    assert "skipped" == step["status"]
    assert "region-outage" in step["statusDetails"]["message"]


def test_each_slo_is_a_step_with_its_promql_its_values_and_its_series(run_dir: Path) -> None:
    out = write_allure_results(run_dir)
    [result] = read_results(out)
    [uptime] = steps_named(result["steps"], "SLO api-availability")
    assert "SLO api-availability: 98.000 % (≥ 99.900 %)" == uptime["name"]
    assert QUERY == attachment(out, uptime, "PromQL (api-availability)").decode()
    values = json.loads(attachment(out, uptime, "values (api-availability)"))
    assert (0.98, 0.999, 50, {"budget_s": 0.05}) == (
        values["value"], values["objective"], values["samples"], values["stats"]
    )  # fmt: skip
    series = attachment(out, uptime, "series api-availability").decode().splitlines()
    assert ["seconds,label,value", "5.000,probe_success,1", "6.000,probe_success,1"] == series[:3]
    assert "27.000,probe_success,0" in series
    [failover] = steps_named(result["steps"], "SLO controller-failover")
    assert "series controller-epoch" in [a["name"] for a in failover["attachments"]]


def test_locust_statistics_are_attached_per_phase_and_for_the_run(run_dir: Path) -> None:
    out = write_allure_results(run_dir)
    [result] = read_results(out)
    [baseline] = steps_named(result["steps"], "phase baseline")
    table = attachment(out, baseline, "Locust statistics (baseline)").decode().splitlines()
    assert ["name,requests,failures,p50_ms,p99_ms,rps", "all,300,2,3,9,20",
            "GET /v1/servers,300,2,3,,"] == table  # fmt: skip
    [deploy] = steps_named(result["steps"], "phase deploy")
    assert [] == deploy["attachments"]
    per_phase = attachment(out, result, "Locust statistics (per phase)").decode().splitlines()
    assert ["run", "baseline", "fault:controller-leader-kill"] == [
        row.split(",")[0] for row in per_phase[1:]
    ]
    assert b'[{"name": "GET /v1/servers"}]' == attachment(out, result, "locust-stats.json")


def test_the_plots_are_attached_as_png(run_dir: Path) -> None:
    out = write_allure_results(run_dir)
    [result] = read_results(out)
    plots = [a for a in result["attachments"] if a["name"].startswith("plot ")]
    names = ["plot timeline", "plot api-availability", "plot controller-epoch"]
    assert names == [a["name"] for a in plots]
    for plot in plots:
        assert "image/png" == plot["type"]
        assert (out / plot["source"]).read_bytes().startswith(PNG_MAGIC)


def test_png_files_in_plots_are_attached_instead_of_rendering_them(run_dir: Path) -> None:
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "latency.png").write_bytes(PNG_MAGIC + b"latency")
    out = write_allure_results(run_dir)
    [result] = read_results(out)
    plots = [a["name"] for a in result["attachments"] if a["name"].startswith("plot ")]
    assert ["plot latency"] == plots
    assert PNG_MAGIC + b"latency" == attachment(out, result, "plot latency")


def test_labels_and_links_name_the_suite_profile_target_and_html_report(run_dir: Path) -> None:
    [result] = read_results(write_allure_results(run_dir))
    labels = {label["name"]: label["value"] for label in result["labels"]}
    expected = {"suite": "certification", "profile": "smoke", "target": "local",
                "severity": "critical", "runId": "20260101-000000-abcd"}  # fmt: skip
    assert expected == {k: labels[k] for k in expected}
    assert {"HTML report": "../report.html", "run.json": "../run.json"} == {
        link["name"]: link["url"] for link in result["links"]
    }


def test_writing_again_replaces_the_results_and_leaves_other_files(run_dir: Path) -> None:
    out = run_dir / "elsewhere"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    first = {p.name for p in write_allure_results(run_dir, out=out).iterdir()}
    second = {p.name for p in write_allure_results(run_dir, out=out).iterdir()}
    assert 1 == len(read_results(out))
    assert len(first) == len(second)
    assert {"notes.txt"} == first & second
    assert not (run_dir / "allure-results").exists()


def test_a_directory_without_run_json_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no run\.json here; pass a run directory") as info:
        write_allure_results(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert not (tmp_path / "allure-results").exists()


NO_DATA_SLO = """
  - name: queue-depth
    indicator: {kind: threshold, promql: "max(max_over_time(queue_depth[$window]))"}
    objective: 10
    comparator: "<="
"""

SLO_TEST = """
def test_api(check_slo):
    check_slo("api", window_s=60)
"""


@pytest.mark.parametrize("allure", [True, False], ids=["with-alluredir", "without"])
def test_check_slo_records_a_step_per_slo_with_its_query_when_allure_is_on(
    pytester: pytest.Pytester, allure: bool
) -> None:
    pytester.makeini(INNER_INI)
    pytester.makeconftest(FAKE_PROMETHEUS.format(good=100, p99=0.8))
    (pytester.path / "slos").mkdir()
    (pytester.path / "slos" / "api.yaml").write_text(SLO_FILE + NO_DATA_SLO)
    target = write_fake_target(pytester.path)
    pytester.makepyfile(SLO_TEST)
    out = pytester.path / "allure-results"
    args = [f"--harness-target-file={target}", *([f"--alluredir={out}"] if allure else [])]
    pytester.runpytest(*args).assert_outcomes(passed=1)
    if not allure:
        assert not out.exists()
        return
    [result] = read_results(out)
    assert "passed" == result["status"]  # a FAIL verdict is the test's to assert, not the step's
    [uptime, latency, queue] = result["steps"]
    assert "check_slo api: api-availability 100.000 % (≥ 99.000 %)" == uptime["name"]
    assert "check_slo api: api-latency-p99 0.8 (≤ 0.5)" == latency["name"]
    assert "check_slo api: queue-depth no data (≤ 10)" == queue["name"]
    assert ("passed", "failed", "broken") == (uptime["status"], latency["status"], queue["status"])
    assert "INVALID: " in queue["statusDetails"]["message"]
    assert "FAIL: measured 0.8; objective ≤ 0.5" in latency["statusDetails"]["message"]
    query = attachment(out, latency, "PromQL (api-latency-p99)").decode()
    assert query.startswith("histogram_quantile(0.99, sum by (le) (rate(x[")
    assert "FAIL" == json.loads(attachment(out, latency, "values (api-latency-p99)"))["verdict"]
