"""Host layouts (profiles/topologies/): regions, where Redis runs, names, checked errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_settings
from harness.drivers.chaos import required_capabilities, validate_experiment
from harness.targets import LocalTarget, LocalTopology
from harness.targets._layout import load_layout
from harness.util.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
TWO_REGIONS = Path("profiles/topologies/two-regions.yaml")


def topology(profile: str, *overrides: str) -> LocalTopology:
    settings = load_settings(profile, repo_root=REPO_ROOT, env={}, overrides=list(overrides))
    return LocalTopology.from_settings(settings, repo_root=REPO_ROOT)


def test_the_default_layout_is_one_region_with_the_names_as_ever() -> None:
    smoke = topology("smoke")

    assert ("",) == smoke.regions
    assert {"api-1", "lb", "controller-1", "agent-1", "redis", "ops"} <= set(smoke.host_names())
    assert "" == smoke.region_of("api-1")


def test_two_regions_name_every_host_by_region_and_place_redis_per_the_file() -> None:
    regions = topology(
        "local-regions",
        "topology.api_replicas=2",
        "topology.controller_replicas=1",
        "topology.node_agents=2",
    )

    assert ("eu", "us") == regions.regions
    hosts = regions.host_names()
    assert len(hosts) == len(set(hosts))
    for region in ("eu", "us"):
        assert {f"{region}-api-1", f"{region}-api-2", f"{region}-lb"} <= set(hosts)
        assert {f"{region}-controller-1", f"{region}-agent-1", f"{region}-agent-2"} <= set(hosts)
    assert {"lb", "ops"} <= set(hosts)
    # The primary first, alone in eu: the replica WAIT 1 waits for is in the other region.
    assert ["eu-redis-1", "us-redis-1", "us-redis-2"] == regions.redis_names()
    assert ["eu-sentinel-1", "us-sentinel-1", "us-sentinel-2"] == regions.sentinel_names()
    assert (2, 3) == (regions.redis_replicas, regions.redis_sentinels)
    assert "replace" == regions.layout.lost_sessions
    assert ("eu", "us", "", "") == tuple(
        regions.region_of(h) for h in ("eu-lb", "us-agent-2", "lb", "ops")
    )


def test_region_outage_is_offered_only_with_namespaces(tmp_path: Path) -> None:
    regions = topology("local-regions")
    target = LocalTarget(run_id="unit", run_dir=tmp_path, topology=regions)
    experiment = REPO_ROOT / "experiments" / "region-outage.yaml"

    assert {"partition", "region-outage"} == set(
        required_capabilities(validate_experiment(experiment))
    )
    if target.namespaced:
        assert {"partition", "region-outage"} <= target.capabilities
    else:
        assert "region-outage" not in target.capabilities
        assert "network namespaces" in target.capability_gaps["region-outage"]
    one = LocalTarget(run_id="unit", run_dir=tmp_path, topology=topology("local-netns"))
    assert "region-outage" not in one.capabilities


def test_a_profile_cannot_also_count_redis_replicas_when_the_layout_places_them() -> None:
    with pytest.raises(ConfigError, match="placed by the layout"):
        topology("local-regions", "redis.replicas=2")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("regions: [{name: eu, redis: [primary]}, {name: eu}]\n", "named twice"),
        ("regions: [{name: eu, redis: [replica]}]\n", "exactly one region must hold"),
        ("regions: [{name: EU, redis: [primary]}]\n", "lowercase name"),
        ("regions: [{name: eu, redis: [primary], sentinels: 1}]\n", "need a Redis replica"),
        ("regions: [{name: eu, redis: [master]}]\n", "must be one of primary, replica"),
        ("regions: [{name: eu, redis: [primary], sentinel: 1}]\n", "did you mean 'sentinels'"),
        ("lost_sessions: keep\n", "must be one of end, replace"),
    ],
)
def test_a_bad_layout_names_its_file_and_line(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\n" + content)

    with pytest.raises(ConfigError) as caught:
        load_layout(path, repo_root=tmp_path)

    message = str(caught.value)
    assert expected in message
    assert f"{path}:" in message


def test_the_shipped_layouts_load() -> None:
    for path in sorted((REPO_ROOT / "profiles" / "topologies").glob("*.yaml")):
        layout = load_layout(path.relative_to(REPO_ROOT), repo_root=REPO_ROOT)
        assert layout.name == path.stem
    two = load_layout(TWO_REGIONS, repo_root=REPO_ROOT)
    assert [("eu-redis-1", "eu")] == two.redis_hosts()[:1]
