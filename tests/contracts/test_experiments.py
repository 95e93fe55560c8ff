"""Every experiment validates against the installed activities, as plain `chaos` would check it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.drivers.chaos import required_capabilities, validate_experiment
from harness.model import CAPABILITIES
from harness.util.errors import ConfigError
from tests.conftest import REPO_ROOT

EXPERIMENTS = sorted((REPO_ROOT / "experiments").glob("*.yaml"))


def test_there_are_experiments_to_check() -> None:
    assert EXPERIMENTS


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_experiment_is_valid_for_chaos_toolkit(path: Path) -> None:
    experiment = validate_experiment(path)
    assert experiment["title"]
    assert experiment["steady-state-hypothesis"]["probes"]


def test_broken_yaml_is_reported_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\nmethod:\n  - type: action\n   name: oops\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:4: not valid YAML"):
        validate_experiment(bad)


def test_an_unknown_activity_is_reported_with_its_line(tmp_path: Path) -> None:
    text = (REPO_ROOT / "experiments" / "controller-leader-kill.yaml").read_text()
    bad = tmp_path / "unknown.yaml"
    bad.write_text(text.replace("func: kill_controller_leader", "func: no_such_action"))
    line = next(i for i, row in enumerate(bad.read_text().splitlines(), 1) if "no_such" in row)
    with pytest.raises(ConfigError, match=rf"unknown\.yaml:{line}: invalid experiment"):
        validate_experiment(bad)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_experiment_names_the_capabilities_it_needs(path: Path) -> None:
    needed = required_capabilities(validate_experiment(path))
    assert needed
    assert set(needed) <= CAPABILITIES
