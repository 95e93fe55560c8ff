"""The local Kubernetes control plane: real apiserver, controllers and scheduler; KWOK nodes."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from harness.targets import KubeCluster
from tests.conftest import REPO_ROOT

# The first test may build the binaries (15-30 minutes cold); pytest-timeout's 900 s is too short.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(4000)]

WAIT_S = 60.0


def pinned_version() -> str:
    text = (REPO_ROOT / "fixtures" / "kube" / "go.mod").read_text()
    match = re.search(r"^\s*k8s\.io/kubernetes (v1\.\d+\.\d+)", text, re.MULTILINE)
    assert match is not None
    return match.group(1)


def wait_until(what: str, probe: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"{what} did not happen within {WAIT_S:g} s")


def running_pods(core: k8s.CoreV1Api, namespace: str, selector: str) -> list[k8s.V1Pod]:
    pods = core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=10)
    return [
        p
        for p in pods.items
        if p.status is not None
        and p.status.phase == "Running"
        and p.metadata is not None
        and p.metadata.deletion_timestamp is None
    ]


def deployment(name: str, replicas: int) -> k8s.V1Deployment:
    labels = {"app": name}
    body = k8s.V1Deployment.from_dict(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]
                    },
                },
            },
        }
    )
    assert body is not None
    return body


def test_apiserver_reports_the_pinned_version(kube_api: k8s.ApiClient) -> None:
    info = k8s.VersionApi(kube_api).get_code(_request_timeout=10)
    assert pinned_version() == info.git_version


def test_three_kwok_nodes_are_ready(kube_api: k8s.ApiClient) -> None:
    nodes = k8s.CoreV1Api(kube_api).list_node(_request_timeout=10).items
    ready = sorted(
        n.metadata.name
        for n in nodes
        if n.metadata is not None
        and n.status is not None
        and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
    )
    assert ["kwok-node-0", "kwok-node-1", "kwok-node-2"] == ready


def test_a_deployment_gets_all_its_pods_running_on_kwok_nodes(
    kube_api: k8s.ApiClient, namespace: str
) -> None:
    core = k8s.CoreV1Api(kube_api)
    k8s.AppsV1Api(kube_api).create_namespaced_deployment(
        namespace, deployment("web", 5), _request_timeout=10
    )
    wait_until("5 Running pods", lambda: len(running_pods(core, namespace, "app=web")) == 5)
    pods = running_pods(core, namespace, "app=web")
    assert 5 == len(pods)
    assert all(p.spec.node_name.startswith("kwok-node-") for p in pods)
    assert all(p.status.pod_ip for p in pods)


def test_built_kubectl_accepts_a_manifest_in_a_server_side_dry_run(
    kube_cluster: KubeCluster, namespace: str, tmp_path: Path
) -> None:
    manifest = tmp_path / "configmap.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: test\n"
    )
    out = subprocess.run(
        [
            str(kube_cluster.bin_dir / "kubectl"),
            f"--kubeconfig={kube_cluster.kubeconfig}",
            "apply",
            "--dry-run=server",
            f"--namespace={namespace}",
            "-f",
            str(manifest),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 == out.returncode, out.stderr
    assert "configmap/settings created (server dry run)" == out.stdout.strip()


def test_deleting_a_pod_makes_its_replicaset_replace_it(
    kube_api: k8s.ApiClient, namespace: str
) -> None:
    core = k8s.CoreV1Api(kube_api)
    k8s.AppsV1Api(kube_api).create_namespaced_deployment(
        namespace, deployment("game", 2), _request_timeout=10
    )
    wait_until("2 Running pods", lambda: len(running_pods(core, namespace, "app=game")) == 2)
    victim = running_pods(core, namespace, "app=game")[0].metadata.name
    core.delete_namespaced_pod(victim, namespace, grace_period_seconds=0, _request_timeout=10)

    def replaced() -> bool:
        names = {p.metadata.name for p in running_pods(core, namespace, "app=game")}
        return len(names) == 2 and victim not in names

    wait_until(f"a replacement for {victim}", replaced)


def test_teardown_leaves_no_process_behind(kube_bin: Path, tmp_path: Path) -> None:
    work_dir = tmp_path / "cluster"
    with KubeCluster(bin_dir=kube_bin, work_dir=work_dir, nodes=1) as cluster:
        pids = [p.pid for p in cluster.supervisor.processes.values()]
        assert 5 == len(pids)
        assert "" != pgrep(work_dir)
    assert "" == pgrep(work_dir)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)


def pgrep(work_dir: Path) -> str:
    out = subprocess.run(
        ["pgrep", "-f", "-a", str(work_dir)], capture_output=True, text=True, timeout=10
    )
    return out.stdout.strip()
