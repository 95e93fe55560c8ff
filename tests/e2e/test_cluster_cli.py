"""``harness cluster up|down|status`` as a user runs it: a subprocess in a directory of its own.

``up`` leaves a real control plane with KWOK nodes running after the command has exited;
``down`` stops every process it started (also after ``up`` itself was killed) and frees every
port; neither needs the other to have finished cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from harness.drivers.process import alive, stop_ledger
from harness.engine.cluster import cluster_down, cluster_status, describe_status, status_is_healthy
from harness.util.net import port_open

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

HARNESS = Path(sys.executable).parent / "harness"
COMMAND_TIMEOUT_S = 240.0
WAIT_S = 60.0
PROCESSES = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"]


def harness(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(HARNESS), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def ledger(cwd: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads((cwd / ".harness/cluster/ledger.json").read_text())["processes"])
    except (OSError, ValueError, KeyError):
        return []


@pytest.fixture
def workdir(kube_bin: Path, tmp_path: Path) -> Iterator[Path]:
    """A directory to run the CLI in (binaries built first); whatever it left is stopped."""
    yield tmp_path
    stop_ledger(tmp_path / ".harness/cluster/ledger.json")


def test_up_starts_ready_kwok_nodes_in_a_labelled_cluster_and_down_stops_every_process_and_port(
    workdir: Path,
) -> None:
    up = harness(workdir, "cluster", "up", "--kwok", "--nodes", "3")
    assert 0 == up.returncode, up.stdout + up.stderr
    kubeconfig = workdir / ".harness/cluster/kubeconfig"
    assert f"export KUBECONFIG={kubeconfig}" in up.stdout.splitlines()

    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    with api:
        core = k8s.CoreV1Api(api)
        nodes = core.list_node(_request_timeout=10).items
        marker = core.read_namespaced_config_map(
            "gsharness-test-cluster", "kube-system", _request_timeout=10
        )
    ready = sorted(
        n.metadata.name
        for n in nodes
        if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
    )
    assert ["kwok-node-0", "kwok-node-1", "kwok-node-2"] == ready
    assert "harness cluster up" == marker.data["created-by"]

    status = harness(workdir, "cluster", "status")
    assert 0 == status.returncode, status.stdout + status.stderr
    assert "3 nodes, 3 Ready" in status.stdout
    state = json.loads((workdir / ".harness/cluster/state.json").read_text())
    procs = state["processes"]
    assert PROCESSES == [p["name"] for p in procs]
    ports = [port for p in procs for port in p["ports"]]
    assert [] == [port for port in ports if not port_open("127.0.0.1", port)]

    down = harness(workdir, "cluster", "down")
    assert 0 == down.returncode, down.stdout + down.stderr
    assert [] == [p["name"] for p in procs if alive(p["pid"], p["start_ticks"])]
    assert [] == [port for port in ports if port_open("127.0.0.1", port)]
    assert not (workdir / ".harness/cluster").exists()


def test_down_stops_what_a_killed_up_left_even_when_some_of_it_is_already_dead(
    workdir: Path,
) -> None:
    with (workdir / "up.log").open("wb") as log:
        up = subprocess.Popen(
            [str(HARNESS), "cluster", "up", "--kwok", "--nodes", "2"],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + WAIT_S
        while {"etcd", "kube-apiserver"} - {e["name"] for e in ledger(workdir)}:
            assert up.poll() is None, (workdir / "up.log").read_text()
            assert time.monotonic() < deadline, "up started no apiserver within 60 s"
            time.sleep(0.1)
    finally:
        up.kill()  # kill -9: no teardown runs
        up.wait(timeout=10)
    left = ledger(workdir)
    etcd = next(e for e in left if e["name"] == "etcd")
    os.kill(etcd["pid"], signal.SIGKILL)  # something to stop is already gone

    status = harness(workdir, "cluster", "status")
    assert 2 == status.returncode, status.stdout + status.stderr
    assert "start-up did not finish" in status.stdout

    down = harness(workdir, "cluster", "down")
    assert 0 == down.returncode, down.stdout + down.stderr
    assert [] == [e["name"] for e in left if alive(e["pid"], e["start_ticks"])]
    assert not (workdir / ".harness/cluster").exists()


def test_down_and_status_with_no_cluster_up_succeed_and_say_so(tmp_path: Path) -> None:
    state_dir = tmp_path / ".harness"
    assert [] == cluster_down(state_dir=state_dir)
    state, processes = cluster_status(state_dir=state_dir)
    assert (None, []) == (state, processes)
    assert status_is_healthy(state, processes)
    assert "no cluster is up" in describe_status(state, processes)


def test_up_refuses_a_node_count_out_of_range_with_a_usage_error(tmp_path: Path) -> None:
    up = harness(tmp_path, "cluster", "up", "--nodes", "0")
    assert 3 == up.returncode
    assert "--nodes 0" in up.stderr
