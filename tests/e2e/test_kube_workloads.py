"""The kind overlay's workloads under the kube activities, on the real control plane (KWOK nodes).

The overlay is applied once for the module (as test_kube_target.py does: its CRD and Redis
volumes provided, the context allowed by flag) and the activities are called as the experiments
call them, through a target file. KWOK marks every Pod Running and Ready and the real
kube-controller-manager runs the Deployments and the HPA, so scaling and Pod replacement are
real; no refplat process runs in a KWOK Pod, so the test writes the controller's Lease itself.
"""

from __future__ import annotations

import datetime
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from harness.chaos._target import ActivityFailed
from harness.chaos.kube import netpolicy, workloads
from harness.targets import KubeCluster, KubeOptions, KubeTarget
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import RedisVolumes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CONTEXT = "gsharness"  # the context KubeCluster writes
CRD_NAME = "prometheusrules.monitoring.coreos.com"
CONTROLLER = "refplat-controller"
WAIT_S = 60.0


@pytest.fixture(scope="module")
def deployed(
    kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, k8s.ApiClient]]:
    """The kind overlay in a fresh namespace, and the target file that points at it."""
    run_dir = tmp_path_factory.mktemp("workloads")
    options = KubeOptions(
        manifests_dir=REPO_ROOT / "platform" / "manifests",
        kubectl=kube_cluster.bin_dir / "kubectl",
        kubeconfig=kube_cluster.kubeconfig,
        context=CONTEXT,
        overlay="kind",
        install_crds=True,
        allow_context=CONTEXT,
        rollout_timeout_s=WAIT_S,
    )
    kube = KubeTarget(run_id=f"t-{uuid.uuid4().hex[:8]}", run_dir=run_dir, options=options)
    with kube_cluster.api_client() as api, RedisVolumes(api, kube.namespace), kube:
        target_file = run_dir / "target.json"
        kube.deploy().write(target_file)
        yield target_file, api
        k8s.ApiextensionsV1Api(api).delete_custom_resource_definition(CRD_NAME, _request_timeout=10)


def namespace_of(target_file: Path) -> str:
    return str(json.loads(target_file.read_text())["extra"]["kube_namespace"])


def fault_events(target_file: Path) -> list[tuple[str, str]]:
    timeline = Path(json.loads(target_file.read_text())["timeline_file"])
    rows = (
        [json.loads(line) for line in timeline.read_text().splitlines()]
        if timeline.is_file()
        else []
    )
    return [(e["name"], e["event"]) for e in rows if e.get("kind") == "fault"]


def controller_pods(api: k8s.ApiClient, namespace: str) -> dict[str, str]:
    """Live controller Pods: name -> uid."""
    pods: Any = k8s.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/component=controller", _request_timeout=10
    )
    return {
        p.metadata.name: p.metadata.uid for p in pods.items if p.metadata.deletion_timestamp is None
    }


def hold_lease(api: k8s.ApiClient, namespace: str, holder: str) -> None:
    """Write the controller's Lease as the holder ``holder`` would (create or replace)."""
    leases = k8s.CoordinationV1Api(api)
    now = datetime.datetime.now(datetime.UTC)
    spec = {
        "holderIdentity": holder,
        "leaseDurationSeconds": 3,
        "renewTime": now,
        "acquireTime": now,
    }
    try:
        lease: Any = leases.read_namespaced_lease(CONTROLLER, namespace, _request_timeout=10)
    except k8s.ApiException as exc:
        assert 404 == exc.status
        body = {"metadata": {"name": CONTROLLER}, "spec": {**spec, "leaseTransitions": 0}}
        leases.create_namespaced_lease(namespace, body, _request_timeout=10)
        return
    lease.spec.holder_identity, lease.spec.renew_time = holder, now
    lease.spec.lease_transitions = (lease.spec.lease_transitions or 0) + 1
    leases.replace_namespaced_lease(CONTROLLER, namespace, lease, _request_timeout=10)


def wait_for(what: str, check: Any) -> Any:
    deadline = time.monotonic() + WAIT_S
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what} not within {WAIT_S:g} s"
        time.sleep(0.25)
    return found


def test_the_leaders_pod_is_deleted_and_replaced_only_once_another_pod_holds_the_lease(
    deployed: tuple[Path, k8s.ApiClient],
) -> None:
    target_file, api = deployed
    namespace = namespace_of(target_file)
    before = controller_pods(api, namespace)
    leader, standby = sorted(before)
    hold_lease(api, namespace, leader)

    deleted = workloads.delete_controller_leader_pod(str(target_file))

    assert (leader, before[leader]) == (deleted["pod"], deleted["uid"])

    def two_pods() -> dict[str, str] | None:
        pods = controller_pods(api, namespace)
        return pods if len(pods) == 2 else None

    after = wait_for("a new controller Pod", two_pods)
    assert leader not in after and standby in after
    assert not workloads.controller_leader_replaced(str(target_file), within_s=2)
    hold_lease(api, namespace, standby)
    assert workloads.controller_leader_replaced(str(target_file), within_s=WAIT_S)
    assert [
        ("k8s-controller-leader-pod-delete", "injected"),
        ("k8s-controller-leader-pod-delete", "recovered"),
    ] == [e for e in fault_events(target_file) if e[0] == "k8s-controller-leader-pod-delete"]


def test_the_api_is_scaled_to_one_replica_with_its_hpa_floor_and_restored_to_three(
    deployed: tuple[Path, k8s.ApiClient],
) -> None:
    target_file, api = deployed
    namespace = namespace_of(target_file)
    hpas = k8s.AutoscalingV2Api(api)

    workloads.scale_deployment(str(target_file), name="refplat-api", replicas=1, within_s=WAIT_S)

    deployment: Any = k8s.AppsV1Api(api).read_namespaced_deployment("refplat-api", namespace)
    hpa: Any = hpas.read_namespaced_horizontal_pod_autoscaler("refplat-api", namespace)
    assert (1, 1, 1) == (
        deployment.spec.replicas,
        deployment.status.available_replicas,
        hpa.spec.min_replicas,
    )
    assert not workloads.deployment_available(
        str(target_file), name="refplat-api", replicas=3, within_s=2
    )
    workloads.restore_deployment(str(target_file), name="refplat-api")
    hpa = hpas.read_namespaced_horizontal_pod_autoscaler("refplat-api", namespace)
    assert 3 == hpa.spec.min_replicas
    assert workloads.deployment_available(
        str(target_file),
        name="refplat-api",
        replicas=3,
        within_s=WAIT_S,
        fault_name="k8s-api-scale",
    )
    assert {} == workloads.restore_deployment(str(target_file), name="refplat-api")
    assert [("k8s-api-scale", "injected"), ("k8s-api-scale", "recovered")] == [
        e for e in fault_events(target_file) if e[0] == "k8s-api-scale"
    ]


def test_without_an_enforcing_network_plugin_the_intruder_gives_no_verdict_and_is_removed(
    deployed: tuple[Path, k8s.ApiClient],
) -> None:
    """KWOK runs no container, so the intruder Pod (admitted under Pod Security ``restricted``)
    never ends: the action fails, its Pod is deleted, and the hypothesis does not hold."""
    target_file, api = deployed
    namespace = namespace_of(target_file)
    labels = k8s.CoreV1Api(api).read_namespace(namespace, _request_timeout=10).metadata.labels
    assert "restricted" == labels["pod-security.kubernetes.io/enforce"]  # admits the intruder
    assert netpolicy.default_deny_enforced(str(target_file))  # declared, and Redis is ready

    with pytest.raises(ActivityFailed, match="gave no outcome within 3 s"):
        netpolicy.connect_from_outside(str(target_file), connect_timeout_s=1, within_s=3)

    pods: Any = k8s.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=f"app.kubernetes.io/name={netpolicy.INTRUDER_NAME}"
    )
    assert [] == [p.metadata.name for p in pods.items if p.metadata.deletion_timestamp is None]
    assert not netpolicy.default_deny_enforced(str(target_file))
