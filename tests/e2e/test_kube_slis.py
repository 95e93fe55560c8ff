"""Kubernetes' own SLIs: a real Prometheus scrapes the session cluster's apiserver and scheduler
over TLS (as ``system:monitoring``) and evaluates the recording rules of
platform/manifests/base/rules/kube-control-plane.rules.yaml."""

from __future__ import annotations

import math
import time
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from harness.drivers.prometheus import PrometheusClient
from harness.targets import KubeCluster
from harness.targets._configs import kube_control_plane_scrape_jobs
from tests.conftest import REPO_ROOT
from tests.integration.conftest import scratch_prometheus

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

RULES = REPO_ROOT / "platform/manifests/base/rules/kube-control-plane.rules.yaml"
RECORDS = (
    "kube:apiserver_mutating_request_duration_seconds:p99_rate5m",
    "kube:apiserver_mutating_request_duration_seconds:p99_by_resource_verb_rate5m",
    "kube:pod_scheduling_sli_duration_seconds:p99_rate5m",
)
WAIT_S = 90.0


def prometheus_config(cluster: KubeCluster) -> str:
    jobs = kube_control_plane_scrape_jobs(
        apiserver=f"127.0.0.1:{cluster.port}",
        scheduler=f"127.0.0.1:{cluster.scheduler_port}",
        controller_manager=f"127.0.0.1:{cluster.controller_manager_port}",
        ca_file=str(cluster.pki.ca.cert),
        cert_file=str(cluster.monitoring_client.cert),
        key_file=str(cluster.monitoring_client.key),
    )
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": jobs,
    }
    return yaml.safe_dump(config, sort_keys=False)


def values(prom: PrometheusClient, query: str) -> list[float]:
    return [value for _, value in prom.instant(query, time.time())]


def create_pod(core: k8s.CoreV1Api, namespace: str) -> None:
    body = {
        "metadata": {"name": f"sli-{uuid.uuid4().hex[:8]}"},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/none:1"}]},
    }
    core.create_namespaced_pod(namespace, body, _request_timeout=10)


def test_prometheus_records_the_mutating_api_latency_and_pod_scheduling_slis_of_a_real_cluster(
    kube_cluster: KubeCluster, kube_api: k8s.ApiClient, namespace: str, tmp_path: Path
) -> None:
    core = k8s.CoreV1Api(kube_api)
    with scratch_prometheus(tmp_path, prometheus_config(kube_cluster)) as prom:
        deadline = time.monotonic() + WAIT_S
        while sorted(values(prom, "up == 1")) != [1.0, 1.0, 1.0]:
            assert time.monotonic() < deadline, f"targets not all up: {prom.instant('up', 0)}"
            time.sleep(0.5)
        found: dict[str, list[float]] = {}
        while True:  # each round: a POST, and a pod for the scheduler to bind
            create_pod(core, namespace)
            found = {record: values(prom, record) for record in RECORDS}
            if all(any(math.isfinite(v) for v in vs) for vs in found.values()):
                break
            assert time.monotonic() < deadline, f"no finite value for every record: {found}"
            time.sleep(1)
    assert all(0 < v < 60 for vs in found.values() for v in vs if math.isfinite(v)), found
