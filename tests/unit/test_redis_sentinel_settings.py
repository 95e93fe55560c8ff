"""The `redis.replicas` and `redis.sentinels` settings; the `redis-failover` capability."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import RedisSettings, Settings, load_settings
from harness.drivers.chaos import required_capabilities, validate_experiment
from harness.targets import LocalTarget, LocalTopology
from harness.targets._redis import quorum, redis_names, sentinel_conf
from harness.util.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
FAILOVER_EXPERIMENT = REPO_ROOT / "experiments" / "redis-primary-failover.yaml"


def capabilities(tmp_path: Path, profile: str, *overrides: str) -> frozenset[str]:
    settings = load_settings(profile, repo_root=REPO_ROOT, env={}, overrides=list(overrides))
    topology = LocalTopology.from_settings(settings)
    return LocalTarget(run_id="unit", run_dir=tmp_path, topology=topology).capabilities


def test_by_default_the_target_runs_one_redis_and_no_sentinel() -> None:
    assert (0, 0) == (Settings().redis.replicas, Settings().redis.sentinels)


def test_a_profile_sets_replicas_and_sentinels(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text("redis: {fsync: always, replicas: 2, sentinels: 3}\n")

    settings = load_settings(str(path), repo_root=tmp_path, env={}, overrides=[])

    assert RedisSettings(fsync="always", replicas=2, sentinels=3) == settings.redis
    topology = LocalTopology.from_settings(settings)
    assert (2, 3) == (topology.redis_replicas, topology.redis_sentinels)


def test_a_negative_sentinel_count_names_the_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text("name: x\nredis:\n  sentinels: -1\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(str(path), repo_root=tmp_path, env={}, overrides=[])

    assert caught.value.problems[0].startswith(
        "profile.yaml:3: field 'redis.sentinels': must be ≥ 0"
    )


@pytest.mark.parametrize(
    ("overrides", "offered"),
    [
        ((), False),
        (("redis.replicas=1",), False),
        (("redis.sentinels=3",), False),
        (("redis.replicas=1", "redis.sentinels=3"), True),
    ],
    ids=["single-redis", "replica-without-sentinels", "sentinels-without-replica", "both"],
)
def test_redis_failover_is_offered_only_with_sentinels_and_a_replica(
    tmp_path: Path, overrides: tuple[str, ...], offered: bool
) -> None:
    assert offered == ("redis-failover" in capabilities(tmp_path, "smoke", *overrides))


def test_the_failover_experiment_is_skipped_on_a_profile_without_sentinels(tmp_path: Path) -> None:
    needed = set(required_capabilities(validate_experiment(FAILOVER_EXPERIMENT)))

    assert {"audit", "redis-failover"} == needed - capabilities(tmp_path, "smoke")
    assert set() == needed - capabilities(tmp_path, "local-redis")


def test_a_namespaced_topology_puts_each_redis_and_sentinel_on_its_own_host() -> None:
    topology = LocalTopology(redis_replicas=1, redis_sentinels=3)

    hosts = topology.host_names()

    expected = ["redis-1", "redis-2", "sentinel-1", "sentinel-2", "sentinel-3"]
    assert expected == [h for h in hosts if h.startswith(("redis", "sentinel"))]
    assert ["redis"] == [h for h in LocalTopology().host_names() if h.startswith("redis")]


@pytest.mark.parametrize(("sentinels", "expected"), [(1, 1), (2, 2), (3, 2), (5, 3)])
def test_a_failover_needs_a_majority_of_the_sentinels(sentinels: int, expected: int) -> None:
    assert expected == quorum(sentinels)


def test_sentinels_monitor_the_first_primary_under_the_refplat_name(tmp_path: Path) -> None:
    conf = sentinel_conf(
        address="127.0.0.1", port=26400, data=tmp_path, primary=("127.0.0.1", 6400), sentinels=3
    )

    assert "sentinel monitor refplat 127.0.0.1 6400 2\n" in conf
    assert ["redis-1", "redis-2", "redis-3"] == redis_names(2)
