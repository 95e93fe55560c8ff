"""Every profile in profiles/ loads with no environment and no overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import RedisSettings, Settings, available_profiles, load_settings
from harness.util.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILES = available_profiles(REPO_ROOT)


def test_the_smoke_profile_exists() -> None:
    assert "smoke" in PROFILES


@pytest.mark.parametrize("name", PROFILES, ids=list(PROFILES))
def test_every_profile_loads(name: str) -> None:
    settings = load_settings(name, repo_root=REPO_ROOT, env={}, overrides=[])

    assert name == settings.name


def test_the_smoke_profile_kills_the_controller_leader() -> None:
    settings = load_settings("smoke", repo_root=REPO_ROOT, env={}, overrides=[])

    expected = Settings(
        name="smoke",
        description="One region on loopback; kill the controller leader under tenant load.",
        experiments=(Path("experiments/controller-leader-kill.yaml"),),
        redis=RedisSettings(fsync="always"),
    )
    assert expected == settings


def test_a_malformed_profile_names_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ntopology:\n  api_replicas: two\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), repo_root=REPO_ROOT, env={}, overrides=[])

    assert caught.value.problems[0].startswith(
        f"{path}:3: field 'topology.api_replicas': expected an integer"
    )
