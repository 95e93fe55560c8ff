"""The ``redis.fsync`` setting: certification profiles run Redis with fsync per write."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import RedisSettings, Settings, available_profiles, load_settings
from harness.targets._local import LocalTopology, redis_argv
from harness.util.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(text)
    return path


def test_redis_fsync_defaults_to_everysec() -> None:
    assert "everysec" == Settings().redis.fsync


@pytest.mark.parametrize("policy", ["always", "everysec", "never"])
def test_a_profile_sets_the_redis_fsync_policy(tmp_path: Path, policy: str) -> None:
    path = write_profile(tmp_path, f"redis: {{fsync: {policy}}}\n")

    settings = load_settings(str(path), repo_root=tmp_path, env={}, overrides=[])

    assert RedisSettings(fsync=policy) == settings.redis


def test_an_unknown_fsync_policy_names_the_field_and_the_choices(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "redis: {fsync: sometimes}\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), repo_root=tmp_path, env={}, overrides=[])

    assert "field 'redis.fsync': must be one of always, everysec, never" in str(caught.value)


def test_the_environment_overrides_the_fsync_policy(tmp_path: Path) -> None:
    path = write_profile(tmp_path, "redis: {fsync: always}\n")
    env = {"HARNESS_REDIS__FSYNC": "everysec"}

    settings = load_settings(str(path), repo_root=tmp_path, env=env, overrides=[])

    assert "everysec" == settings.redis.fsync


@pytest.mark.parametrize("profile", available_profiles(REPO_ROOT))
def test_every_certification_profile_fsyncs_always(profile: str) -> None:
    settings = load_settings(profile, repo_root=REPO_ROOT, env={}, overrides=[])

    assert "always" == LocalTopology.from_settings(settings).redis_fsync


@pytest.mark.parametrize(
    ("policy", "appendfsync"),
    [("always", "always"), ("everysec", "everysec"), ("never", "no")],
    ids=["always", "everysec", "never"],
)
def test_redis_runs_append_only_with_the_fsync_policy(
    tmp_path: Path, policy: str, appendfsync: str
) -> None:
    argv = redis_argv("redis-server", address="127.0.0.1", port=6400, data=tmp_path, fsync=policy)

    options = dict(zip(argv[1::2], argv[2::2], strict=True))
    assert ("yes", appendfsync, str(tmp_path)) == (
        options["--appendonly"],
        options["--appendfsync"],
        options["--dir"],
    )
