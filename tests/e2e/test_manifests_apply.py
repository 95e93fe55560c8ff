"""The manifests against a real kube-apiserver (KWOK nodes): every overlay passes a server-side
dry run, the kind overlay installs for real with its pods Running, Pod Security `restricted` is
enforced and the controller's RBAC is what it claims."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from harness.targets import KubeCluster
from tests.contracts.test_manifests import MANIFESTS, OVERLAYS, stage_manifests
from tests.e2e.conftest import REDIS_CLAIMS, redis_volume

# The session's cluster may build the binaries first (15-30 minutes cold).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(4000)]

NAMESPACE = "refplat"
CRD = MANIFESTS / "crds" / "prometheusrules.yaml"
WAIT_S = 60.0
# The kind overlay's workloads and their replicas (ReplicaSets and StatefulSets make the pods).
EXPECTED_PODS = {"api": 3, "controller": 2, "redis": 2, "sentinel": 3, "runtime": 2}


def kubectl(cluster: KubeCluster, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )
    assert 0 == out.returncode, f"kubectl {' '.join(args)}: {out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stage_manifests(tmp_path_factory.mktemp("deploy") / "manifests")


@pytest.fixture(scope="module")
def runtime_installed(kube_cluster: KubeCluster) -> Iterator[KubeCluster]:
    """The PrometheusRule CRD and the kwok overlay (namespace, controller RBAC), really applied."""
    kubectl(kube_cluster, "apply", "--server-side", "-f", str(CRD))
    kubectl(
        kube_cluster,
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/prometheusrules.monitoring.coreos.com",
    )
    kubectl(kube_cluster, "apply", "--server-side", "-k", str(MANIFESTS / "overlays" / "kwok"))
    yield kube_cluster
    with kube_cluster.api_client() as api:
        core = k8s.CoreV1Api(api)
        core.delete_namespace(NAMESPACE, _request_timeout=10)
        for claim in REDIS_CLAIMS:
            try:
                core.delete_persistent_volume(f"{NAMESPACE}-{claim}", _request_timeout=10)
            except k8s.ApiException as exc:
                if exc.status != 404:
                    raise
    kubectl(kube_cluster, "delete", "--wait=false", "-f", str(CRD))


@pytest.fixture(scope="module")
def kind_installed(runtime_installed: KubeCluster, staged: Path) -> KubeCluster:
    """The kind overlay applied for real, with its deploy-time Secrets and Redis volumes."""
    with runtime_installed.api_client() as api:
        core = k8s.CoreV1Api(api)
        for claim in REDIS_CLAIMS:
            core.create_persistent_volume(
                redis_volume(NAMESPACE, claim, reclaim="Delete"), _request_timeout=10
            )
    kubectl(runtime_installed, "apply", "--server-side", "-k", str(staged / "overlays" / "kind"))
    return runtime_installed


def running_by_component(api: k8s.ApiClient) -> dict[str, int]:
    pods = k8s.CoreV1Api(api).list_namespaced_pod(NAMESPACE, _request_timeout=10).items
    counts: dict[str, int] = {}
    for pod in pods:
        if pod.status.phase != "Running" or pod.metadata.deletion_timestamp is not None:
            continue
        component = (pod.metadata.labels or {}).get("app.kubernetes.io/component", "")
        counts[component] = counts.get(component, 0) + 1
    return counts


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_passes_a_server_side_dry_run(
    runtime_installed: KubeCluster, staged: Path, overlay: str
) -> None:
    out = kubectl(
        runtime_installed,
        "apply",
        "--server-side",
        "--dry-run=server",
        "-k",
        str(staged / "overlays" / overlay),
    )
    assert "(server dry run)" in out


def test_the_controller_service_account_may_manage_pods_but_nothing_else(
    runtime_installed: KubeCluster,
) -> None:
    def can(who: str, verb: str, resource: str) -> str:
        out = subprocess.run(
            [
                str(runtime_installed.bin_dir / "kubectl"),
                f"--kubeconfig={runtime_installed.kubeconfig}",
                "auth",
                "can-i",
                verb,
                resource,
                f"--namespace={NAMESPACE}",
                f"--as=system:serviceaccount:{NAMESPACE}:{who}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout.strip()

    answers = {
        "controller create pods": can("refplat-controller", "create", "pods"),
        "controller update leases": can("refplat-controller", "update", "leases"),
        "controller get secrets": can("refplat-controller", "get", "secrets"),
        "controller patch pods": can("refplat-controller", "patch", "pods"),
        "api list pods": can("refplat-api", "list", "pods"),
    }
    assert {
        "controller create pods": "yes",
        "controller update leases": "yes",
        "controller get secrets": "no",
        "controller patch pods": "no",
        "api list pods": "no",
    } == answers


def test_the_kind_overlay_gets_every_pod_running_on_kwok_nodes(
    kind_installed: KubeCluster,
) -> None:
    expected = {**EXPECTED_PODS, "": 1}  # "": the overlay's Prometheus (its own labels)
    deadline = time.monotonic() + WAIT_S
    with kind_installed.api_client() as api:
        counts = running_by_component(api)
        while counts != expected and time.monotonic() < deadline:
            time.sleep(0.5)
            counts = running_by_component(api)
        pods = k8s.CoreV1Api(api).list_namespaced_pod(NAMESPACE, _request_timeout=10).items
    assert expected == counts
    assert all(p.spec.node_name.startswith("kwok-node-") for p in pods)


def test_pod_security_admission_refuses_a_privileged_pod(kind_installed: KubeCluster) -> None:
    pod = k8s.V1Pod.from_dict(
        {
            "metadata": {"name": "privileged"},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "registry.k8s.io/pause:3.10",
                        "securityContext": {"privileged": True},
                    }
                ]
            },
        }
    )
    assert pod is not None
    with kind_installed.api_client() as api, pytest.raises(k8s.ApiException) as refused:
        k8s.CoreV1Api(api).create_namespaced_pod(NAMESPACE, pod, _request_timeout=10)
    assert 403 == refused.value.status
    message = json.loads(refused.value.body or "{}").get("message", "")
    assert 'violates PodSecurity "restricted:latest"' in message
