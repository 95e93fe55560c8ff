"""The kube target against the real control plane (KWOK nodes): it refuses a cluster that is not
labelled as a test cluster unless the context is named with --allow-context, deploys an overlay
into a namespace of its own with server-side apply, waits for the rollouts and deletes the
namespace at teardown."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient

from harness.targets import NODE_PORTS, KubeCluster, KubeOptions, KubeTarget
from harness.targets._kube import pod_problems
from harness.targets._kubeobjects import RUN_LABEL
from harness.util.errors import ConfigError
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import RedisVolumes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(4000)]

MANIFESTS = REPO_ROOT / "platform" / "manifests"
CONTEXT = "gsharness"  # the context KubeCluster writes
CRD_NAME = "prometheusrules.monitoring.coreos.com"
# The kind overlay's workloads: (kind, name) -> replicas.
KIND_WORKLOADS = {
    ("Deployment", "refplat-api"): 3,
    ("Deployment", "refplat-controller"): 2,
    ("Deployment", "prometheus"): 1,
    ("StatefulSet", "refplat-redis"): 2,
    ("StatefulSet", "refplat-sentinel"): 3,
    ("StatefulSet", "refplat-node"): 2,  # the kube runtime: one per platform node
}


def options(cluster: KubeCluster, **overrides: object) -> KubeOptions:
    base = KubeOptions(
        manifests_dir=MANIFESTS,
        kubectl=cluster.bin_dir / "kubectl",
        kubeconfig=cluster.kubeconfig,
        context=CONTEXT,
        rollout_timeout_s=60,
    )
    return KubeOptions(**{**base.__dict__, **overrides})  # type: ignore[arg-type]


def target(cluster: KubeCluster, run_dir: Path, **overrides: object) -> KubeTarget:
    run_id = f"t-{uuid.uuid4().hex[:8]}"
    return KubeTarget(run_id=run_id, run_dir=run_dir, options=options(cluster, **overrides))


def namespace_exists(api: k8s.ApiClient, name: str) -> bool:
    try:
        k8s.CoreV1Api(api).read_namespace(name, _request_timeout=10)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


@pytest.mark.parametrize(
    ("allow", "expected"),
    [
        (None, f"--allow-context {CONTEXT}"),
        ("production-eu", f"does not name the context in use ({CONTEXT})"),
    ],
    ids=["no-flag", "flag-names-another-context"],
)
def test_an_unlabelled_context_is_refused_naming_the_context_and_the_flag(
    kube_cluster: KubeCluster,
    kube_api: k8s.ApiClient,
    tmp_path: Path,
    allow: str | None,
    expected: str,
) -> None:
    kube = target(kube_cluster, tmp_path, allow_context=allow)
    with kube, pytest.raises(ConfigError) as refused:
        kube.deploy()
    message = str(refused.value)
    assert expected in message
    assert repr(CONTEXT) in message or f"({CONTEXT})" in message
    assert not namespace_exists(kube_api, kube.namespace)


def test_the_kwok_overlay_goes_into_a_fresh_namespace_that_teardown_removes(
    kube_cluster: KubeCluster, kube_api: k8s.ApiClient, labelled: None, tmp_path: Path
) -> None:
    kube = target(kube_cluster, tmp_path)
    with kube:
        endpoints = kube.deploy()
        ns = k8s.CoreV1Api(kube_api).read_namespace(kube.namespace, _request_timeout=10)
        binding = k8s.RbacAuthorizationV1Api(kube_api).read_namespaced_role_binding(
            "refplat-controller", kube.namespace, _request_timeout=10
        )
        account = k8s.CoreV1Api(kube_api).read_namespaced_service_account(
            "refplat-controller", kube.namespace, _request_timeout=10
        )
    labels = ns.metadata.labels
    assert (kube.run_id, "restricted") == (
        labels[RUN_LABEL],
        labels["pod-security.kubernetes.io/enforce"],
    )
    assert [kube.namespace] == [s.namespace for s in binding.subjects]
    assert "gsharness" in [m.manager for m in account.metadata.managed_fields]
    assert ("kube", kube.namespace) == (endpoints.target, endpoints.extra["kube_namespace"])
    assert (
        "controller-pod-delete",
        "network-policy",
        "node-delete",
        "node-drain",
        "pod-delete",
        "scale",
    ) == endpoints.capabilities
    assert not namespace_exists(kube_api, kube.namespace)


@pytest.fixture
def crd_and_volumes(
    kube_cluster: KubeCluster, kube_api: k8s.ApiClient, tmp_path: Path
) -> Iterator[KubeTarget]:
    """A kube target for the kind overlay as the kind target deploys it (its API and Prometheus
    on node ports), allowed by flag, with its Redis volumes pre-bound (the test cluster has no
    storage provisioner); the CRD and the volumes removed after."""
    kube = target(
        kube_cluster,
        tmp_path,
        overlay="kind",
        install_crds=True,
        allow_context=CONTEXT,
        node_ports=NODE_PORTS,
    )
    with RedisVolumes(kube_api, kube.namespace):
        yield kube
    k8s.ApiextensionsV1Api(kube_api).delete_custom_resource_definition(
        CRD_NAME, _request_timeout=10
    )


def test_a_context_named_with_the_flag_is_accepted_and_the_kind_overlay_rolls_out_on_node_ports(
    kube_api: k8s.ApiClient, crd_and_volumes: KubeTarget
) -> None:
    kube = crd_and_volumes
    with kube:
        endpoints = kube.deploy()
        apps = k8s.AppsV1Api(kube_api)
        ready = {
            ("Deployment", d.metadata.name): d.status.available_replicas
            for d in apps.list_namespaced_deployment(kube.namespace, _request_timeout=10).items
        } | {
            ("StatefulSet", s.metadata.name): s.status.ready_replicas
            for s in apps.list_namespaced_stateful_set(kube.namespace, _request_timeout=10).items
        }
        services = k8s.CoreV1Api(kube_api).list_namespaced_service(
            kube.namespace, _request_timeout=10
        )
        node_ports = {
            s.metadata.name: s.spec.ports[0].node_port
            for s in services.items
            if s.spec.type == "NodePort"
        }
    assert KIND_WORKLOADS == ready
    assert dict(NODE_PORTS) == node_ports
    assert f"http://refplat-api.{kube.namespace}.svc:80" == endpoints.api_url
    assert 13 == len(endpoints.processes)
    assert all(p.host.startswith("kwok-node-") for p in endpoints.processes)
    assert not namespace_exists(kube_api, kube.namespace)


def test_why_pods_are_not_ready_is_named_for_a_rollout_timeout(
    kube_api: k8s.ApiClient, namespace: str
) -> None:
    """What a rollout timeout adds to its message: each Pod not ready and why (here: no node
    matches its selector, so the scheduler leaves it Pending)."""
    body = {
        "metadata": {"name": "nowhere"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "nowhere"}},
            "template": {
                "metadata": {"labels": {"app": "nowhere"}},
                "spec": {
                    "nodeSelector": {"gsharness.io/no-such-node": "true"},
                    "containers": [{"name": "c", "image": "x"}],
                },
            },
        },
    }
    k8s.AppsV1Api(kube_api).create_namespaced_deployment(namespace, body, _request_timeout=10)
    deadline = time.monotonic() + 30
    while not (said := pod_problems(kube_api, namespace)) and time.monotonic() < deadline:
        time.sleep(0.5)

    assert said.startswith("\n  pod/nowhere-")
    assert "Unschedulable: 0/3 nodes are available" in said
    assert "--image" not in said  # the image hint is for pull failures only


def test_a_crd_the_cluster_has_already_is_left_as_it_is(
    kube_cluster: KubeCluster, kube_api: k8s.ApiClient, tmp_path: Path
) -> None:
    """On a real cluster the PrometheusRule CRD is likely the Prometheus Operator's: the target
    applies only the CRDs that are missing, never a forced apply over someone else's."""
    kube = target(kube_cluster, tmp_path, overlay="kind", install_crds=True)
    dynamic = DynamicClient(kube_api)  # type: ignore[no-untyped-call]
    (crd,) = kube._crds()
    assert [crd] == kube._missing(dynamic, [crd])
    theirs = {**crd, "metadata": {**crd["metadata"], "annotations": {"owner": "operator"}}}
    extensions = k8s.ApiextensionsV1Api(kube_api)
    extensions.create_custom_resource_definition(theirs, _request_timeout=10)
    try:
        assert [] == kube._missing(dynamic, [crd])
    finally:
        extensions.delete_custom_resource_definition(CRD_NAME, _request_timeout=10)
