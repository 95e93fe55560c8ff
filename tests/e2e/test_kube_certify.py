"""`harness certify --target kube`: the kube-kwok profile against the real control plane.

refplat's control plane runs on loopback, its game servers are Pods on the session's KWOK nodes;
the profile deletes a node, terminates game-server Pods and drains a node. A watch beside the run
records every game-server Pod it sees, so the test checks from the cluster itself that the
victims' Pods were replaced (new uids) and, after a node fault, placed on another node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from harness.targets import KubeCluster
from tests.conftest import REPO_ROOT, link_content

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

FAULTS = ("k8s-gameserver-pod-terminate", "k8s-node-drain", "k8s-node-delete")
# The kind overlay's experiments: the profile lists them, KWOK cannot run them (with the reason).
IN_CLUSTER = {
    "k8s-controller-leader-pod-delete": "controllers run as local processes",
    "k8s-api-scale": "API runs as local processes",
    "k8s-network-policy-deny": "nothing enforces NetworkPolicies on KWOK nodes",
}
RUN_TIMEOUT_S = 400
WATCH_S = 2


class PodLog:
    """Every game-server Pod bound in the run's namespace: (server id, uid) -> (node, the
    instant the watch first saw it bound)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], tuple[str, float]] = {}
        self.namespaces: set[str] = set()
        self.errors: list[str] = []

    def observe(self, pod: Any) -> None:
        if pod.metadata.namespace.startswith("gsh-") and pod.spec.node_name:
            key = (pod.metadata.labels["gsharness.io/server-id"], pod.metadata.uid)
            self.seen.setdefault(key, (pod.spec.node_name, time.time()))
            self.namespaces.add(pod.metadata.namespace)

    def first_after(self, server_id: str, at: float) -> tuple[str, str] | None:
        """(uid, node) of the first Pod of ``server_id`` bound after ``at``."""
        later = [
            (seen_at, uid, node)
            for (sid, uid), (node, seen_at) in self.seen.items()
            if sid == server_id and seen_at > at
        ]
        return min(later)[1:] if later else None


@contextmanager
def pod_log(kube_cluster: KubeCluster) -> Iterator[PodLog]:
    """A watch on game-server Pods (every event: a short-lived Pod is not missed)."""
    seen, stop = PodLog(), threading.Event()

    def follow() -> None:
        with kube_cluster.api_client() as api:
            core = k8s.CoreV1Api(api)
            version = ""
            while not stop.is_set():
                try:
                    for event in k8s_watch.Watch().stream(
                        core.list_pod_for_all_namespaces,
                        label_selector="app.kubernetes.io/name=gameserver",
                        resource_version=version or None,
                        timeout_seconds=WATCH_S,
                        _request_timeout=WATCH_S + 5,
                    ):
                        seen.observe(event["object"])
                        version = event["object"].metadata.resource_version
                except k8s.ApiException as exc:
                    if exc.status != 410:
                        seen.errors.append(f"HTTP {exc.status}")
                    version = ""  # too old (410) or failed: list again
                except Exception as exc:  # the test reports it: the log may have a gap
                    seen.errors.append(repr(exc))
                    stop.wait(0.5)

    thread = threading.Thread(target=follow, name="pod-log", daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=WATCH_S + 10)


def nodes(kube_cluster: KubeCluster) -> dict[str, bool]:
    """Node name -> schedulable."""
    with kube_cluster.api_client() as api:
        found: Any = k8s.CoreV1Api(api).list_node(_request_timeout=10)
    return {n.metadata.name: not n.spec.unschedulable for n in found.items}


def test_kube_kwok_certification_replaces_lost_pods_and_leaves_nothing_behind(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    _, current = k8s_config.list_kube_config_contexts(config_file=str(kube_cluster.kubeconfig))
    context = current["name"]
    nodes_before = nodes(kube_cluster)
    with pod_log(kube_cluster) as seen:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "harness.cli", "certify", "--target", "kube"),
                *("--kubeconfig", str(kube_cluster.kubeconfig), "--allow-context", context),
                *("--profile", "kube-kwok", "--reports-dir", str(tmp_path)),
            ],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            cwd=REPO_ROOT,
        )
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    data = json.loads((run_dir / "run.json").read_text())
    assert 0 == result.returncode, result.stdout + result.stderr[-4000:]
    assert "PASS" == data["verdict"]
    faults = {f["name"]: f for f in data["faults"]}
    assert set(FAULTS) | set(IN_CLUSTER) == set(faults)
    assert {"PASS"} == {faults[f]["status"] for f in FAULTS}, faults
    for fault, reason in IN_CLUSTER.items():
        assert "SKIPPED" == faults[fault]["status"], faults[fault]
        assert reason in faults[fault]["detail"], faults[fault]
    assert {"PASS"} == {s["verdict"] for s in data["slos"]}, data["slos"]
    # Kubernetes' own SLOs were judged from the cluster's apiserver and scheduler metrics.
    kube_slos = {s["name"]: s["value"] for s in data["slos"] if s["name"].startswith("kube-")}
    assert {"kube-mutating-api-latency-p99", "kube-pod-startup-p99"} == set(kube_slos)
    assert all(0 < v < 5 for v in kube_slos.values()), kube_slos

    assert [] == seen.errors  # the watch saw every Pod
    victims = json.loads((run_dir / "kube-victims.json").read_text())
    for fault in FAULTS:
        taken = victims[fault]
        assert taken["pods"], f"{fault} took no game server"
        for server_id, old_uid in taken["pods"].items():
            replacement = seen.first_after(server_id, taken["at"])
            assert replacement is not None, f"{fault}: {server_id} got no new pod"
            uid, node = replacement
            assert old_uid != uid
            assert taken["node"] != node, f"{fault}: {server_id} back on {node}"

    (namespace,) = seen.namespaces
    assert namespace == f"gsh-{data['run_id']}"
    with kube_cluster.api_client() as api:
        left: Any = k8s.CoreV1Api(api).list_namespace(_request_timeout=10)
    assert namespace not in {n.metadata.name for n in left.items}
    assert nodes_before == nodes(kube_cluster)  # the deleted node is back, none left cordoned


def certify_kube_kwok(work: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`harness certify --target kube --profile kube-kwok FLAGS` run in ``work`` (holding links
    to the repository's content), as a user runs it."""
    link_content(work)
    return subprocess.run(
        [
            *(sys.executable, "-m", "harness.cli", "certify", "--target", "kube", *flags),
            *("--profile", "kube-kwok", "--reports-dir", str(work / "reports")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def test_certify_on_kube_without_a_cluster_is_a_usage_error_that_says_how_to_get_one(
    tmp_path: Path,
) -> None:
    result = certify_kube_kwok(tmp_path)  # a checkout without .harness/cluster
    assert 3 == result.returncode, result.stderr
    assert "harness cluster up --kwok" in result.stderr
    assert not (tmp_path / "reports").exists()  # nothing started


@pytest.fixture
def no_kwok_nodes(kube_cluster: KubeCluster) -> Iterator[None]:
    """The session's nodes without their ``type=kwok`` label for one test (as on a real
    cluster), labelled again after it."""
    names = list(nodes(kube_cluster))

    def label(value: str | None) -> None:
        with kube_cluster.api_client() as api:
            for name in names:
                body = {"metadata": {"labels": {"type": value}}}
                k8s.CoreV1Api(api).patch_node(name, body, _request_timeout=10)

    label(None)
    try:
        yield
    finally:
        label("kwok")


def test_certify_on_kube_without_kwok_nodes_says_to_put_the_platform_in_the_cluster(
    kube_cluster: KubeCluster, no_kwok_nodes: None, tmp_path: Path
) -> None:
    result = certify_kube_kwok(
        tmp_path, "--kubeconfig", str(kube_cluster.kubeconfig), "--allow-context", "gsharness"
    )
    assert 3 == result.returncode, result.stderr[-3000:]
    assert "has no KWOK nodes (label type=kwok)" in result.stderr
    assert "--overlay kind --image REF" in result.stderr
    assert "Nothing was started." in result.stderr
    with kube_cluster.api_client() as api:
        left: Any = k8s.CoreV1Api(api).list_namespace(_request_timeout=10)
    assert not [n.metadata.name for n in left.items if n.metadata.name.startswith("gsh-")]
