"""Bad input stops the harness before anything starts: exit 3, the file, the line, the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def certify(workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "certify", "--target", "local", *extra],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_nothing_started(workdir: Path, result: subprocess.CompletedProcess[str]) -> None:
    assert 3 == result.returncode, result.stdout + result.stderr
    assert "Nothing was started." in result.stderr
    assert not (workdir / "reports").exists()


def test_an_unknown_profile_lists_the_known_ones(workdir: Path) -> None:
    result = certify(workdir, "--profile", "nope")
    assert_nothing_started(workdir, result)
    assert "smoke" in result.stderr


def test_a_malformed_profile_names_its_file_and_line(workdir: Path) -> None:
    (workdir / "profiles" / "broken.yaml").write_text(
        "name: broken\ntopology:\n  api_replicas: two\n"
    )
    result = certify(workdir, "--profile", "broken")
    assert_nothing_started(workdir, result)
    assert "broken.yaml:3" in result.stderr


def test_a_malformed_slo_file_names_its_file_and_line(workdir: Path) -> None:
    slo = workdir / "slos" / "smoke.yaml"
    slo.write_text(slo.read_text().replace('comparator: "<="', 'comparator: "=<"', 1))
    line = next(i for i, row in enumerate(slo.read_text().splitlines(), 1) if '"=<"' in row)
    result = certify(workdir, "--profile", "smoke")
    assert_nothing_started(workdir, result)
    assert f"smoke.yaml:{line}" in result.stderr


def test_a_malformed_experiment_names_its_file_and_line(workdir: Path) -> None:
    exp = workdir / "experiments" / "controller-leader-kill.yaml"
    exp.write_text(exp.read_text().replace("func: api_healthy", "func: api_healty"))
    line = next(i for i, row in enumerate(exp.read_text().splitlines(), 1) if "api_healty" in row)
    result = certify(workdir, "--profile", "smoke")
    assert_nothing_started(workdir, result)
    assert f"controller-leader-kill.yaml:{line}" in result.stderr


def test_a_bad_override_is_a_usage_error(workdir: Path) -> None:
    result = certify(workdir, "--profile", "smoke", "--set", "topology.nonsense=1")
    assert_nothing_started(workdir, result)
    assert "topology.nonsense" in result.stderr


def test_a_metric_prometheus_does_not_have_stops_the_run_before_the_load(workdir: Path) -> None:
    slo = workdir / "slos" / "smoke.yaml"
    right = "refplat_api_request_duration_seconds_bucket"
    slo.write_text(slo.read_text().replace(right, right.replace("duration", "duraton")))
    line = next(i for i, row in enumerate(slo.read_text().splitlines(), 1) if "duraton" in row)
    item = max(
        i
        for i, row in enumerate(slo.read_text().splitlines(), 1)
        if i <= line and row.lstrip().startswith("- name:")
    )

    result = certify(workdir, "--profile", "smoke")

    assert 3 == result.returncode, result.stdout + result.stderr
    assert f"smoke.yaml:{item}" in result.stderr
    assert "refplat_api_request_duraton_seconds_bucket" in result.stderr
    assert "did you mean 'refplat_api_request_duration_seconds_bucket'" in result.stderr
    assert "no load or fault ran" in result.stderr
    assert not list((workdir / "reports").glob("*/locust"))  # Locust never started
