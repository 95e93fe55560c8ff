"""Fixtures of the e2e tier: the local Kubernetes control plane (built once, cached)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s

from harness.targets import KubeCluster, kube_bin_dir
from harness.targets._kube import MARKER_NAMESPACE, TEST_CLUSTER_MARKER
from tests.conftest import REPO_ROOT

# The kind overlay's Redis StatefulSet claims; the test cluster has no storage provisioner.
REDIS_CLAIMS = ("data-refplat-redis-0", "data-refplat-redis-1")
BUILD_TIMEOUT_S = 3600  # a cold build is 15-30 minutes on 2 cores; warm it is a no-op


@pytest.fixture(scope="session")
def kube_bin() -> Path:
    """The bin dir of the control-plane binaries; builds them (scripts/kube-build.sh) if missing."""
    found = kube_bin_dir(REPO_ROOT)
    if found is not None:
        return found
    script = REPO_ROOT / "scripts" / "kube-build.sh"
    try:
        out = subprocess.run(
            ["bash", str(script)],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} did not finish within {BUILD_TIMEOUT_S} s; run it by hand.")
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-30:])
        pytest.fail(f"{script} failed (exit {out.returncode}); the end of its output:\n{tail}")
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def kube_cluster(kube_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """One control plane with three KWOK nodes for the whole session, stopped at its end."""
    with KubeCluster(bin_dir=kube_bin, work_dir=tmp_path_factory.mktemp("kube")) as cluster:
        yield cluster


@pytest.fixture
def kube_api(kube_cluster: KubeCluster) -> Iterator[k8s.ApiClient]:
    """An admin API client of the session's cluster."""
    with kube_cluster.api_client() as api:
        yield api


@pytest.fixture
def namespace(kube_api: k8s.ApiClient) -> Iterator[str]:
    """A namespace of its own for one test, deleted after it."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(kube_api)
    body = k8s.V1Namespace.from_dict({"metadata": {"name": name}})
    assert body is not None
    core.create_namespace(body=body, _request_timeout=10)
    yield name
    core.delete_namespace(name, _request_timeout=10)


@pytest.fixture
def labelled(kube_api: k8s.ApiClient) -> Iterator[None]:
    """The session's cluster marked as a test cluster for one test."""
    core = k8s.CoreV1Api(kube_api)
    marker = k8s.V1ConfigMap.from_dict({"metadata": {"name": TEST_CLUSTER_MARKER}})
    assert marker is not None
    core.create_namespaced_config_map(MARKER_NAMESPACE, marker, _request_timeout=10)
    yield
    core.delete_namespaced_config_map(TEST_CLUSTER_MARKER, MARKER_NAMESPACE, _request_timeout=10)


def redis_volume(namespace: str, claim: str, *, reclaim: str = "Retain") -> k8s.V1PersistentVolume:
    """A volume pre-bound to one Redis claim of ``namespace`` (named ``<namespace>-<claim>``)."""
    body = k8s.V1PersistentVolume.from_dict(
        {
            "metadata": {"name": f"{namespace}-{claim}"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": reclaim,
                "hostPath": {"path": f"/nonexistent/{claim}"},  # KWOK never mounts it
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
    )
    assert body is not None
    return body


class RedisVolumes:
    """The Redis claims' volumes of ``namespace``, created on enter and deleted on exit."""

    def __init__(self, api: k8s.ApiClient, namespace: str) -> None:
        self.core, self.namespace = k8s.CoreV1Api(api), namespace

    def __enter__(self) -> RedisVolumes:
        for claim in REDIS_CLAIMS:
            self.core.create_persistent_volume(
                redis_volume(self.namespace, claim), _request_timeout=10
            )
        return self

    def __exit__(self, *exc: object) -> None:
        for claim in REDIS_CLAIMS:
            try:
                self.core.delete_persistent_volume(f"{self.namespace}-{claim}", _request_timeout=10)
            except k8s.ApiException as error:
                if error.status != 404:
                    raise
