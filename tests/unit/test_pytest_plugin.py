"""The pytest plugin: options, markers, the target fixture's skip, check_slo and its summary.

Unit tests run inner pytest sessions with pytester against a fake Prometheus and a target file
written by the test: no process is started. The integration test at the end uses a real target
brought up with ``harness up``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.model import Endpoints
from tests.conftest import REPO_ROOT

pytest_plugins = ["pytester"]

FAKE_PROMETHEUS = """
import pytest


class FakePrometheus:
    '''Satisfies harness.slo.PromQuery: 100 probes of which {good} succeeded, p99 {p99} s.'''

    def instant(self, query, at):
        if "sum_over_time" in query:
            return [({{}}, {good}.0)]
        if "count_over_time" in query:
            return [({{}}, 100.0)]
        if "histogram_quantile" in query:
            return [({{}}, {p99})]
        return []


@pytest.fixture(scope="session")
def prometheus():
    return FakePrometheus()
"""

SLO_FILE = """
slos:
  - name: api-availability
    indicator: {kind: probe-uptime, job: probe-api}
    objective: 0.99
    comparator: ">="
  - name: api-latency-p99
    indicator: {kind: threshold, promql: "histogram_quantile(0.99, sum by (le) (rate(x[$window])))"}
    objective: 0.5
    comparator: "<="
"""


INNER_INI = """
[pytest]
addopts = -p no:cacheprovider
filterwarnings =
    error
    ignore:Module already imported so cannot be rewritten:pytest.PytestAssertRewriteWarning
"""


@pytest.fixture(autouse=True)
def inner_ini(pytester: pytest.Pytester) -> None:
    """Inner sessions turn warnings into errors, as this repository does.

    The one warning ignored is pytest's about rewriting the ``harness`` package, which the
    outer session has already imported when an inner one runs in the same process.
    """
    pytester.makeini(INNER_INI)


def write_fake_target(where: Path) -> Path:
    """A target.json naming a Prometheus that is never called (the fake replaces it)."""
    endpoints = Endpoints(
        run_id="fake",
        target="local",
        run_dir=str(where),
        api_url="http://127.0.0.1:9",
        admin_token_file=str(where / "admin-token"),
        redis_url="redis://127.0.0.1:9/0",
        prometheus_url="http://127.0.0.1:9",
        timeline_file=str(where / "timeline.jsonl"),
    )
    path = where / "target.json"
    endpoints.write(path)
    return path


@pytest.fixture
def fake_target(pytester: pytest.Pytester) -> Path:
    pytester.makeconftest(FAKE_PROMETHEUS.format(good=100, p99=0.8))
    (pytester.path / "slos").mkdir()
    (pytester.path / "slos" / "api.yaml").write_text(SLO_FILE)
    return write_fake_target(pytester.path)


def test_options_are_listed_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*resilience harness*",
            "*--harness-target={local,kube,kind}*",
            "*--harness-profile=HARNESS_PROFILE*",
            "*--harness-keep*",
            "*--harness-target-file=PATH*",
        ]
    )


def test_options_parse_into_the_config(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pathlib import Path

        def test_options(pytestconfig):
            assert "kind" == pytestconfig.getoption("harness_target")
            assert "soak" == pytestconfig.getoption("harness_profile")
            assert pytestconfig.getoption("harness_keep")
            assert Path("t.json") == pytestconfig.getoption("harness_target_file")
        """
    )
    result = pytester.runpytest(
        "--harness-target=kind",
        "--harness-profile=soak",
        "--harness-keep",
        "--harness-target-file=t.json",
    )
    result.assert_outcomes(passed=1)


def test_options_default_to_a_local_smoke_run_that_is_torn_down(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_defaults(pytestconfig):
            assert "local" == pytestconfig.getoption("harness_target")
            assert "smoke" == pytestconfig.getoption("harness_profile")
            assert not pytestconfig.getoption("harness_keep")
            assert None is pytestconfig.getoption("harness_target_file")
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_an_unknown_target_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--harness-target=cloud")
    assert pytest.ExitCode.USAGE_ERROR == result.ret
    result.stderr.fnmatch_lines(["*--harness-target: invalid choice: 'cloud'*"])


def test_markers_are_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slo
        @pytest.mark.chaos
        @pytest.mark.load
        def test_marked():
            pass
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)
    pytester.runpytest("--markers").stdout.fnmatch_lines(
        ["@pytest.mark.slo: *", "@pytest.mark.chaos: *", "@pytest.mark.load: *"]
    )


@pytest.mark.parametrize("target", ["kube", "kind"], ids=["kube", "kind"])
def test_a_non_local_target_skips_the_tests_that_need_it(
    pytester: pytest.Pytester, target: str
) -> None:
    pytester.makepyfile(
        """
        def test_needs_target(harness_target):
            raise AssertionError("never reached")

        def test_needs_nothing():
            pass
        """
    )
    result = pytester.runpytest(f"--harness-target={target}", "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*the kube and kind targets are not built yet*"])


def test_a_session_without_harness_fixtures_starts_nothing_and_prints_nothing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "harness SLO verdicts" not in result.stdout.str()
    assert not (pytester.path / "reports").exists()
    assert not (pytester.path / ".harness").exists()


def test_an_unknown_profile_errors_naming_the_profiles_folder(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_settings(harness_settings):\n    pass\n")
    result = pytester.runpytest("--harness-profile=nope")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*harness: configuration error:*", "*unknown profile 'nope'*"])


def test_target_file_gives_the_endpoints_and_is_left_alone(
    pytester: pytest.Pytester, fake_target: Path
) -> None:
    pytester.makepyfile(
        """
        def test_endpoints(harness_target, harness_endpoints, harness_target_file):
            assert "fake" == harness_target.run_id
            assert harness_target is harness_endpoints
            assert "target.json" == harness_target_file.name
        """
    )
    result = pytester.runpytest(f"--harness-target-file={fake_target}")
    result.assert_outcomes(passed=1)
    assert fake_target.is_file()


def test_a_missing_target_file_errors_with_the_next_step(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_endpoints(harness_target):\n    pass\n")
    result = pytester.runpytest("--harness-target-file=nowhere.json")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no target connection file*harness up*"])


def test_check_slo_judges_against_prometheus_and_the_summary_lists_verdicts(
    pytester: pytest.Pytester, fake_target: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slo
        def test_api(check_slo):
            results = check_slo("api", window_s=60)
            verdicts = {r.name: str(r.verdict) for r in results}
            assert {"api-availability": "PASS", "api-latency-p99": "FAIL"} == verdicts
            assert 60 == results[0].window.duration_s
        """
    )
    result = pytester.runpytest(f"--harness-target-file={fake_target}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*harness SLO verdicts*",
            "SLO*WINDOW*VERDICT*VALUE*OBJECTIVE*TEST",
            "api-availability*run*PASS*100*%*≥ 99*%*test_api",
            "api-latency-p99*run*FAIL*≤*test_api",
        ]
    )


def test_check_slo_keeps_only_the_named_slos_and_takes_a_path(
    pytester: pytest.Pytester, fake_target: Path
) -> None:
    pytester.makepyfile(
        """
        def test_one(check_slo):
            results = check_slo("slos/api.yaml", window_s=30, names=["api-availability"])
            assert ["api-availability"] == [r.name for r in results]
        """
    )
    result = pytester.runpytest(f"--harness-target-file={fake_target}")
    result.assert_outcomes(passed=1)
    assert "api-latency-p99" not in result.stdout.str()


def test_check_slo_of_an_unknown_name_says_which_exist(
    pytester: pytest.Pytester, fake_target: Path
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from harness.util.errors import ConfigError

        def test_unknown(check_slo):
            with pytest.raises(ConfigError, match="declares api-availability, api-latency-p99"):
                check_slo("api", window_s=30, names=["nope"])
        """
    )
    result = pytester.runpytest(f"--harness-target-file={fake_target}")
    result.assert_outcomes(passed=1)
    assert "harness SLO verdicts" not in result.stdout.str()


# --- integration: a real target brought up with `harness up` ---------------------------------

CONTENT = ("profiles", "slos", "experiments", "loadtests")


def harness(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.integration
def test_check_slo_and_run_load_on_a_target_brought_up_by_harness(
    pytester: pytest.Pytester,
) -> None:
    for name in CONTENT:
        shutil.copytree(REPO_ROOT / name, pytester.path / name)
    pytester.makepyfile(
        """
        import time

        def test_game_day(check_slo, run_load):
            load = run_load(25, users=2, spawn_rate=2)
            assert load.requests > 0
            time.sleep(2)  # let the last probes be scraped
            # 40 probes a second: 1,200 over 30 s resolve 99.9 %'s budget (1,000 needed).
            (result,) = check_slo("smoke", window_s=30, names=["api-availability"])
            assert "PASS" == str(result.verdict), result.detail
        """
    )
    up = harness(["up"], cwd=pytester.path)
    try:
        assert 0 == up.returncode, up.stdout + up.stderr[-3000:]
        result = pytester.runpytest_subprocess(
            "--harness-target-file=.harness/target.json", timeout=120
        )
        assert 0 == result.ret, result.stdout.str()[-3000:]
        result.stdout.fnmatch_lines(["api-availability*run*PASS*test_game_day"])
    finally:
        down = harness(["down"], cwd=pytester.path)
    assert 0 == down.returncode, down.stderr


@pytest.mark.integration
def test_a_deployed_target_serves_the_session_and_is_torn_down_after_it(
    pytester: pytest.Pytester,
) -> None:
    for name in CONTENT:
        shutil.copytree(REPO_ROOT / name, pytester.path / name)
    pytester.makepyfile(
        """
        import time

        def test_deployed(harness_target, prometheus):
            assert "local" == harness_target.target
            assert harness_target.tenant_token()
            assert prometheus.instant('up{job="refplat-api"}', time.time())
        """
    )
    result = pytester.runpytest_subprocess(timeout=120)
    assert 0 == result.ret, result.stdout.str()[-3000:] + result.stderr.str()[-3000:]
    assert [] == list((pytester.path / ".harness" / "runs").glob("*.json"))
    leftovers = subprocess.run(
        ["pgrep", "-f", str(pytester.path)], capture_output=True, text=True, timeout=10
    )
    assert "" == leftovers.stdout
