"""The in-cluster target (``--target kube --overlay kind``) and its tunnels, on the real control
plane: real ``kubectl port-forward`` through the real kube-apiserver to the Pods' "kubelet",
which on KWOK nodes is kwok's server; it forwards each Pod port to a process of this host, as the
cluster's ClusterPortForward says (:func:`forward_pods`). So the Pods are KWOK's, the processes
behind their ports stand-ins started here (a real Prometheus scraping itself under the platform's
job names, and a small HTTP server for the API); everything between is real.

What cannot be tested here: the platform's real Pods (no container runtime), and how kubectl
behaves when a real kubelet tears a forwarded Pod down (it exits; on KWOK the stream lives on,
so the move below is the tunnel noticing the Pod left the Service's ready endpoints)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kubernetes import client as k8s

from harness.drivers.prometheus import PrometheusClient
from harness.targets import InClusterOptions, InClusterTarget, KubeCluster
from harness.targets._kubecluster import forward_pods
from harness.targets._kubeobjects import namespace_for
from harness.targets._tunnel import Tunnel
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import RedisVolumes
from tests.integration.conftest import IN_CLUSTER, federated_ups, scratch_prometheus

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

IMAGE = "registry.example.test/refplat:e2e"
CRD_NAME = "prometheusrules.monitoring.coreos.com"
API_POD_PORT, PROMETHEUS_POD_PORT = 8080, 9090  # containerPorts of the kind overlay


@contextmanager
def stand_in(name: str) -> Iterator[tuple[str, int]]:
    """An HTTP server on a free loopback port answering every GET with 200 and ``name``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = name.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ("127.0.0.1", server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def until(what: str, check: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:g} s"
        time.sleep(0.2)


def kubectl(cluster: KubeCluster, *args: str) -> str:
    out = subprocess.run(
        [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout


def tunnel_to(
    cluster: KubeCluster, namespace: str, service: str, port: int, log_dir: Path
) -> Tunnel:
    return Tunnel(
        kubectl=cluster.bin_dir / "kubectl",
        kubeconfig=cluster.kubeconfig,
        context="",
        namespace=namespace,
        service=service,
        port=port,
        log_dir=log_dir,
        api=cluster.api_client,
    )


def web_service(cluster: KubeCluster, namespace: str, *, replicas: int) -> None:
    """Deployment ``web`` (Pods on port 8080) behind Service ``web`` (port 80), rolled out."""
    kubectl(cluster, "-n", namespace, "create", "deployment", "web", "--image=x",
            f"--replicas={replicas}", "--port=8080")  # fmt: skip
    kubectl(cluster, "-n", namespace, "expose", "deployment", "web", "--port=80",
            "--target-port=8080", "--name=web")  # fmt: skip
    kubectl(cluster, "-n", namespace, "rollout", "status", "deployment/web", "--timeout=60s")


@contextmanager
def web_tunnel(
    cluster: KubeCluster, api: k8s.ApiClient, namespace: str, replicas: int, log_dir: Path
) -> Iterator[tuple[Tunnel, str]]:
    """A started tunnel to Service ``web`` (:func:`web_service`) whose Pods kwok forwards to a
    stand-in answering "web", and its URL; stopped on exit."""
    with stand_in("web") as target:
        forward_pods(api, name=namespace, namespace=namespace, targets={8080: target})
        web_service(cluster, namespace, replicas=replicas)
        tunnel = tunnel_to(cluster, namespace, "web", 80, log_dir)
        try:
            yield tunnel, tunnel.start()
        finally:
            tunnel.stop()


@pytest.fixture
def forwarded_namespace(
    kube_cluster: KubeCluster, kube_api: k8s.ApiClient, namespace: str
) -> Iterator[str]:
    """``namespace``, and after the test the ClusterPortForward named after it deleted."""
    yield namespace
    k8s.CustomObjectsApi(kube_api).delete_cluster_custom_object(
        "kwok.x-k8s.io", "v1alpha1", "clusterportforwards", namespace, _request_timeout=10
    )


def test_a_tunnel_reaches_a_service_through_the_apiserver_and_moves_when_its_pod_goes(
    kube_cluster: KubeCluster, kube_api: k8s.ApiClient, forwarded_namespace: str, tmp_path: Path
) -> None:
    ns = forwarded_namespace
    with web_tunnel(kube_cluster, kube_api, ns, 2, tmp_path) as (tunnel, url):
        first = tunnel.pod
        assert "web" == get(url + "/")
        kubectl(kube_cluster, "-n", ns, "delete", f"pod/{first}", "--wait=false")
        until("the tunnel moves to the other Pod", lambda: tunnel.moves == 1)
        assert "web" == get(url + "/")  # the same URL, through another Pod
        second = tunnel.pod
    log = tunnel.log_path.read_text()
    assert first != second and second.startswith("web-")
    assert ["up", "moved"] == [e.what for e in tunnel.events]
    assert f"pod/{first} is no longer a ready endpoint" in tunnel.events[1].detail
    assert 2 == log.count(f"Forwarding from 127.0.0.1:{tunnel.local_port} -> 8080")
    with pytest.raises(OSError):  # closed: kubectl is gone and nothing listens there
        get(url + "/")


def test_a_tunnel_to_a_service_without_ready_pods_fails_with_the_reason(
    kube_cluster: KubeCluster, kube_api: k8s.ApiClient, namespace: str, tmp_path: Path
) -> None:
    kubectl(kube_cluster, "-n", namespace, "create", "service", "clusterip", "none",
            "--tcp=80:8080")  # fmt: skip
    tunnel = tunnel_to(kube_cluster, namespace, "none", 81, tmp_path)
    with pytest.raises(Exception, match=r"service/none in .* has no port 81 \(ports: 80\)"):
        tunnel.start()


def test_the_in_cluster_target_deploys_the_platform_with_the_image_and_observes_it_by_tunnels(
    kube_cluster: KubeCluster, kube_api: k8s.ApiClient, labelled: None, tmp_path: Path
) -> None:
    """Deploy as `harness certify --target kube --overlay kind --image REF` does: the kind
    overlay with the image replaced, rolled out; tunnels to refplat-api and prometheus; the
    host's Prometheus federating the in-cluster one through its tunnel. Then an API Pod is
    deleted (the tunnel moves), and teardown leaves nothing: processes, tunnels, namespace."""
    run_id = f"t-{uuid.uuid4().hex[:8]}"
    ns = namespace_for(run_id)
    (tmp_path / "cluster").mkdir()
    options = InClusterOptions(
        repo_root=REPO_ROOT,
        kubectl=kube_cluster.bin_dir / "kubectl",
        kubeconfig=kube_cluster.kubeconfig,
        image=IMAGE,
        rollout_timeout_s=120,
    )
    with (
        scratch_prometheus(tmp_path / "cluster", IN_CLUSTER) as inside,
        stand_in("refplat-api") as api_process,
        RedisVolumes(kube_api, ns),
    ):
        prometheus_process = ("127.0.0.1", int(inside.url.rsplit(":", 1)[1]))
        forward_pods(
            kube_api,
            name=ns,
            namespace=ns,
            targets={API_POD_PORT: api_process, PROMETHEUS_POD_PORT: prometheus_process},
        )
        try:
            with InClusterTarget(run_id=run_id, run_dir=tmp_path / "run", options=options) as t:
                endpoints = t.deploy()
                assert "refplat-api" == get(endpoints.api_url + "/readyz")
                with PrometheusClient(endpoints.prometheus_url, timeout_s=5) as prom:
                    federated = federated_ups(prom)
                apps = k8s.AppsV1Api(kube_api)
                api_image = (
                    apps.read_namespaced_deployment("refplat-api", ns, _request_timeout=10)
                    .spec.template.spec.containers[0]
                    .image
                )
                runtime = apps.read_namespaced_stateful_set("refplat-node", ns, _request_timeout=10)
                tunnel = next(tu for tu in t.tunnels if tu.service == "refplat-api")
                kubectl(kube_cluster, "-n", ns, "delete", f"pod/{tunnel.pod}", "--wait=false")
                until("the API tunnel moves", lambda: tunnel.moves == 1)
                assert "refplat-api" == get(endpoints.api_url + "/readyz")
                running = list(t.supervisor.processes.values())
        finally:
            k8s.CustomObjectsApi(kube_api).delete_cluster_custom_object(
                "kwok.x-k8s.io", "v1alpha1", "clusterportforwards", ns, _request_timeout=10
            )
            k8s.ApiextensionsV1Api(kube_api).delete_custom_resource_definition(
                CRD_NAME, _request_timeout=10
            )
    assert endpoints.api_url.startswith("http://127.0.0.1:")
    assert "kube" == endpoints.target
    assert 4 == len(federated) and {1.0} == {v for _, v in federated}
    assert IMAGE == api_image
    assert f"--image={IMAGE}" in runtime.spec.template.spec.containers[0].args
    events = json.loads((tmp_path / "run" / "tunnels.json").read_text())
    assert [("prometheus", "up"), ("refplat-api", "moved"), ("refplat-api", "up")] == sorted(
        (e["service"], e["what"]) for e in events
    )
    assert [] == [p.name for p in running if p.running()]
    # kubectl of each tunnel is in the run's ledger: a killed run's next command stops it
    assert {"tunnel-prometheus", "tunnel-refplat-api"} == {
        p.name for p in running if p.role == "tunnel"
    }
    assert [] == list(t.tunnels)  # closed and forgotten
    with pytest.raises(k8s.ApiException) as gone:
        k8s.CoreV1Api(kube_api).read_namespace(ns, _request_timeout=10)
    assert 404 == gone.value.status


def test_a_tunnel_whose_service_loses_every_pod_comes_back_on_the_same_port_with_a_new_one(
    kube_cluster: KubeCluster, kube_api: k8s.ApiClient, forwarded_namespace: str, tmp_path: Path
) -> None:
    ns = forwarded_namespace
    with web_tunnel(kube_cluster, kube_api, ns, 1, tmp_path) as (tunnel, url):
        first = tunnel.pod
        kubectl(kube_cluster, "-n", ns, "scale", "deployment/web", "--replicas=0")
        time.sleep(2)  # no ready Pod: the tunnel waits for one, its old kubectl still up
        assert 0 == tunnel.moves
        kubectl(kube_cluster, "-n", ns, "scale", "deployment/web", "--replicas=1")
        until("the tunnel moves to the new Pod", lambda: tunnel.moves == 1)
        assert "web" == get(url + "/")
        second = tunnel.pod
    assert first != second
    assert ["up", "moved"] == [e.what for e in tunnel.events]
