"""Where a kind cluster publishes its node ports: the cluster config's mappings and what the
container engine reports for a cluster that already exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.targets._kindhost import host_ports, parse_engine_ports
from harness.util.errors import InfraError


def test_the_engine_s_port_listing_maps_each_container_port_to_its_host_addresses() -> None:
    listing = (
        "30080/tcp -> 127.0.0.1:30080\n"
        "30090/tcp -> 127.0.0.1:31090\n"
        "6443/tcp -> 127.0.0.1:41234\n"
        "30090/tcp -> [::1]:31090\n"
        "53/udp -> 127.0.0.1:5353\n"
        "garbage\n"
    )

    assert {
        30080: [("127.0.0.1", 30080)],
        30090: [("127.0.0.1", 31090), ("::1", 31090)],
        6443: [("127.0.0.1", 41234)],
    } == parse_engine_ports(listing)


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        pytest.param(
            "{containerPort: 30080, hostPort: 8080, listenAddress: 127.0.0.1}",
            {30080: ("127.0.0.1", 8080)},
            id="as-written",
        ),
        pytest.param(
            "{containerPort: 30080}", {30080: ("127.0.0.1", 30080)}, id="defaults-to-loopback"
        ),
    ],
)
def test_the_cluster_config_s_control_plane_mappings_say_where_the_host_connects(
    tmp_path: Path, mapping: str, expected: dict[int, tuple[str, int]]
) -> None:
    config = tmp_path / "cluster.yaml"
    config.write_text(
        "nodes:\n"
        f"  - {{role: control-plane, extraPortMappings: [{mapping}]}}\n"
        "  - {role: worker, extraPortMappings: [{containerPort: 1}]}\n"
    )

    assert expected == host_ports(config)


def test_an_unreadable_cluster_config_is_an_infrastructure_error_naming_it(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "absent.yaml"

    with pytest.raises(InfraError) as refused:
        host_ports(missing)

    assert str(refused.value).startswith(f"{missing}: not a readable kind cluster config")
