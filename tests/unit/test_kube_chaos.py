"""The kube target's pure parts: flags it needs, Nodes put back, what a probe calls restored."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.chaos.kube._cluster import Placed
from harness.chaos.kube.probes import _problems
from harness.targets._kwok import _recreatable, kube_problem


def pod(uid: str, *, node: str = "kwok-node-1", ready: bool = True) -> Any:
    condition = SimpleNamespace(type="Ready", status="True" if ready else "False")
    return SimpleNamespace(
        metadata=SimpleNamespace(uid=uid),
        spec=SimpleNamespace(node_name=node),
        status=SimpleNamespace(phase="Running", conditions=[condition]),
    )


def test_without_a_kubeconfig_or_context_the_kube_target_says_how_to_get_a_cluster() -> None:
    assert "harness cluster up --kwok" in kube_problem(None, None)
    assert "" == kube_problem(None, "my-context")


def test_a_kubeconfig_that_is_not_there_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "kubeconfig"
    assert f"--kubeconfig {missing}: no such file." == kube_problem(missing, None)


def test_a_deleted_node_is_created_again_without_what_the_apiserver_set() -> None:
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "kwok-node-1",
            "uid": "u-1",
            "resourceVersion": "42",
            "labels": {"type": "kwok"},
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "spec": {"unschedulable": True, "podCIDR": "10.0.1.0/24"},
        "status": {"allocatable": {"pods": "110"}, "conditions": [{"type": "Ready"}]},
    }
    assert {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "kwok-node-1",
            "labels": {"type": "kwok"},
            "annotations": {"kwok.x-k8s.io/node": "fake"},
        },
        "spec": {"podCIDR": "10.0.1.0/24"},
        "status": {"allocatable": {"pods": "110"}},
    } == _recreatable(node)


@pytest.mark.parametrize(
    ("placed", "expected"),
    [
        ([Placed("gs-a", "Ready", pod("new"))], []),
        ([Placed("gs-a", "Allocated", pod("new"))], []),
        ([Placed("gs-a", "Unhealthy", None)], ["gs-a Unhealthy, pod not serving"]),
        ([Placed("gs-a", "Ready", pod("new", ready=False))], ["gs-a Ready, pod not serving"]),
        ([Placed("gs-a", "Ready", pod("old"))], ["gs-a still in its old pod"]),
        ([Placed("gs-a", "Ready", pod("new", node="kwok-node-0"))], ["gs-a back on kwok-node-0"]),
    ],
    ids=["replaced", "allocated", "lost", "unready", "same-pod", "same-node"],
)
def test_servers_are_restored_when_each_is_placed_in_a_new_serving_pod_off_the_node(
    placed: list[Placed], expected: list[str]
) -> None:
    taken = {"node": "kwok-node-0", "pods": {"gs-a": "old"}}
    assert expected == _problems(placed, taken, 0)


def test_a_missing_server_is_a_problem_when_a_count_is_expected() -> None:
    assert ["1 servers, 2 expected"] == _problems([Placed("gs-a", "Ready", pod("x"))], {}, 2)
