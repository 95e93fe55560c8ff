"""The settings loader: defaults < profile < HARNESS_* env < flags, every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import (
    Settings,
    TopologySettings,
    available_profiles,
    load_settings,
)
from harness.util.errors import ConfigError

PROFILE = """\
name: tiny
description: A profile for tests.
topology: {api_replicas: 2, controller_replicas: 2, node_agents: 3, game_servers: 6}
load: {locustfile: loadtests/tenant.py, users: 6, spawn_rate: 3}
phases: {warmup_s: 5, baseline_s: 10, recovery_s: 10}
experiments: [experiments/kill.yaml]
slos: slos/smoke.yaml
timeouts: {ready_s: 60}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository root with one profile and the files it refers to."""
    for name in ("loadtests/tenant.py", "experiments/kill.yaml", "slos/smoke.yaml"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles/tiny.yaml").write_text(PROFILE)
    return tmp_path


def write_profile(repo: Path, text: str, name: str = "bad") -> str:
    (repo / "profiles" / f"{name}.yaml").write_text(text)
    return name


def test_a_profile_loads_into_the_settings_tree(repo: Path) -> None:
    settings = load_settings("tiny", repo_root=repo, env={}, overrides=[])

    assert TopologySettings(2, 2, 3, 6) == settings.topology
    assert (Path("experiments/kill.yaml"),) == settings.experiments
    assert 3.0 == settings.load.spawn_rate


def test_a_profile_can_be_given_as_a_path(repo: Path) -> None:
    settings = load_settings(str(repo / "profiles/tiny.yaml"), repo_root=repo, env={}, overrides=[])

    assert "tiny" == settings.name


def test_omitted_fields_take_their_defaults_and_the_name_defaults_to_the_file(repo: Path) -> None:
    name = write_profile(repo, "description: only this\n", name="partial")

    settings = load_settings(name, repo_root=repo, env={}, overrides=[])

    assert Settings(name="partial", description="only this") == settings


def test_the_environment_overrides_the_profile_and_flags_override_the_environment(
    repo: Path,
) -> None:
    env = {
        "HARNESS_TOPOLOGY__CONTROLLER_REPLICAS": "1",
        "HARNESS_LOAD__USERS": "9",
        "PATH": "/usr/bin",
    }
    flags = ["load.users=12", "phases.warmup_s=0.5"]

    settings = load_settings("tiny", repo_root=repo, env=env, overrides=flags)

    assert (1, 12, 0.5) == (
        settings.topology.controller_replicas,
        settings.load.users,
        settings.phases.warmup_s,
    )


def test_an_unknown_profile_lists_the_available_ones(repo: Path) -> None:
    write_profile(repo, "{}\n", name="other")

    with pytest.raises(ConfigError) as caught:
        load_settings("nope", repo_root=repo, env={}, overrides=[])

    assert "available profiles: other, tiny" in str(caught.value)


def test_every_problem_is_reported_at_once_with_file_and_line(repo: Path) -> None:
    name = write_profile(
        repo,
        "name: bad\n"
        "topology:\n"
        "  api_replicas: 0\n"
        "  controler_replicas: 2\n"
        "load: {locustfile: loadtests/missing.py, users: many}\n"
        "phases: {warmup_s: -1}\n",
    )

    with pytest.raises(ConfigError) as caught:
        load_settings(name, repo_root=repo, env={}, overrides=[])

    expected = [
        "profiles/bad.yaml:4: field 'topology.controler_replicas': unknown key; "
        "did you mean 'controller_replicas'?",
        "profiles/bad.yaml:3: field 'topology.api_replicas': must be ≥ 1, got 0; raise it.",
        f"profiles/bad.yaml:5: field 'load.locustfile': file 'loadtests/missing.py' does not "
        f"exist under {repo}; fix the path (it is relative to the repository root).",
        "profiles/bad.yaml:5: field 'load.users': expected an integer, got 'many' (str); "
        "write an integer there.",
        "profiles/bad.yaml:6: field 'phases.warmup_s': must be ≥ 0, got -1.0; raise it.",
    ]
    assert expected == caught.value.problems


@pytest.mark.parametrize(
    ("env", "overrides", "expected"),
    [
        pytest.param(
            {"HARNESS_TOPOLOGY__API_REPLICAS": "zero"},
            [],
            "environment variable HARNESS_TOPOLOGY__API_REPLICAS: field 'topology.api_replicas'",
            id="bad env value",
        ),
        pytest.param(
            {"HARNESS_TOPOLOGY_API_REPLICAS": "1"},
            [],
            "environment variable HARNESS_TOPOLOGY_API_REPLICAS: field 'topology_api_replicas': "
            "unknown key",
            id="single underscore",
        ),
        pytest.param(
            {}, ["topology.api_replicas"], "command-line override 'topology.api_replicas'",
            id="flag without value",
        ),
        pytest.param(
            {}, ["load.users=[1"], "command-line override 'load.users=[1': the value",
            id="flag with bad YAML",
        ),
        pytest.param(
            {}, ["topology.pods=3"], "field 'topology.pods': unknown key", id="unknown flag key"
        ),
    ],
)  # fmt: skip
def test_a_bad_override_names_the_variable_or_flag(
    repo: Path, env: dict[str, str], overrides: list[str], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings("tiny", repo_root=repo, env=env, overrides=overrides)

    assert expected in str(caught.value)


def test_a_profile_that_is_not_a_mapping_is_an_error(repo: Path) -> None:
    name = write_profile(repo, "- just\n- a list\n")

    with pytest.raises(ConfigError, match=r"profiles/bad.yaml:1: expected a mapping"):
        load_settings(name, repo_root=repo, env={}, overrides=[])


def test_available_profiles_are_sorted_names(repo: Path) -> None:
    write_profile(repo, "{}\n", name="alpha")

    assert ("alpha", "tiny") == available_profiles(repo)
