"""How the host reaches and observes a kind cluster: the node ports its config publishes on the
host, and the host Prometheus's scrape configs (federation of the in-cluster Prometheus, the
apiserver, each node's kubelet through the apiserver). Pure, apart from the port check and the
wait on Prometheus; the kind target (``_kind``) uses them, the contract tests check them."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from harness.drivers.prometheus import PrometheusClient
from harness.util.errors import HarnessError, InfraError

# The Services the harness reaches from the host, each on a nodePort that the cluster config
# maps to a host port (fixtures/kind/cluster.yaml; a contract test keeps the two in step).
API_NODE_PORT = 30080
PROMETHEUS_NODE_PORT = 30090
NODE_PORTS = (("refplat-api", API_NODE_PORT), ("prometheus", PROMETHEUS_NODE_PORT))
# The in-cluster scrape jobs the host's Prometheus federates, and the jobs it scrapes itself
# that the certify engine waits for (the federated ones are awaited through their `up` series).
FEDERATED_JOBS = ("refplat-api", "refplat-controller", "refplat-agent")
FEDERATE_JOB = "refplat-federate"
KUBELET_JOB = "kubelet"
PROMETHEUS_JOBS = (FEDERATE_JOB, "probe-api", "kube-apiserver", KUBELET_JOB)
KUBELET_SCRAPE_S = 5  # a histogram judged over the run: no need for the 1 s of the platform


def host_ports(cluster_config: Path) -> dict[int, tuple[str, int]]:
    """containerPort -> (listen address, host port) of the ``extraPortMappings`` of the cluster
    config's control-plane node (where the harness connects for each nodePort)."""
    try:
        config = yaml.safe_load(cluster_config.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InfraError(f"{cluster_config}: not a readable kind cluster config: {exc}") from exc
    found: dict[int, tuple[str, int]] = {}
    for node in config.get("nodes") or []:
        if node.get("role") != "control-plane":
            continue
        for m in node.get("extraPortMappings") or []:
            address = str(m.get("listenAddress") or "0.0.0.0")
            host = "127.0.0.1" if address in ("0.0.0.0", "") else address
            found[int(m["containerPort"])] = (host, int(m.get("hostPort") or m["containerPort"]))
    return found


def parse_engine_ports(text: str) -> dict[int, list[tuple[str, int]]]:
    """``docker port CONTAINER``'s output (``30080/tcp -> 127.0.0.1:30080`` lines) as container
    port -> [(host address, host port)] (TCP only; an IPv6 address keeps its brackets off)."""
    found: dict[int, list[tuple[str, int]]] = {}
    for line in text.splitlines():
        inside, arrow, outside = line.partition(" -> ")
        port, _, proto = inside.strip().partition("/")
        if not arrow or proto != "tcp" or not port.isdigit():
            continue
        address, _, host_port = outside.strip().rpartition(":")
        if host_port.isdigit():
            found.setdefault(int(port), []).append((address.strip("[]"), int(host_port)))
    return found


def published_at(
    config: Path, ports: dict[int, tuple[str, int]], node_port: int
) -> tuple[str, int]:
    """Where on the host ``config`` publishes ``node_port``; InfraError when it does not."""
    if node_port not in ports:
        raise InfraError(
            f"{config}: the control-plane node maps no containerPort {node_port} "
            "(extraPortMappings); the harness reaches the platform through it."
        )
    return ports[node_port]


def check_free(config: Path, ports: dict[int, tuple[str, int]], node_port: int) -> None:
    """Raise InfraError unless the host port that ``config`` maps ``node_port`` to is free."""
    address, port = published_at(config, ports, node_port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, port))
        except OSError as exc:
            raise InfraError(
                f"Host port {address}:{port}, where {config} publishes nodePort {node_port}, is "
                f"in use ({exc.strerror}); stop what holds it (another kind cluster?) or change "
                "its hostPort there."
            ) from exc


def host_scrape_configs(
    *,
    federate: str,
    control_plane: list[dict[str, object]],
    apiserver: str,
    nodes: Sequence[str],
) -> list[dict[str, object]]:
    """What the host's Prometheus scrapes besides the local target's jobs: the in-cluster
    Prometheus at ``federate`` (``host:port``), the ``control_plane`` jobs
    (:func:`control_plane_scrape_configs`: the apiserver at ``apiserver``, ``host:port``) and
    the kubelets of ``nodes`` through it."""
    job = next(j for j in control_plane if j["job_name"] == "kube-apiserver")
    kubelets = kubelet_job(job, apiserver=apiserver, nodes=nodes)
    return [federate_job(federate), *control_plane, kubelets]


def federate_job(target: str) -> dict[str, object]:
    """The scrape config federating the in-cluster jobs from ``target`` (``host:port``)."""
    return {
        "job_name": FEDERATE_JOB,
        "honor_labels": True,
        "honor_timestamps": False,
        "metrics_path": "/federate",
        "params": {"match[]": [f'{{job=~"{"|".join(FEDERATED_JOBS)}"}}']},
        "static_configs": [{"targets": [target]}],
    }


def kubelet_job(
    apiserver_job: dict[str, object], *, apiserver: str, nodes: Sequence[str]
) -> dict[str, object]:
    """Each node's kubelet ``/metrics`` through the node proxy of the apiserver at ``apiserver``
    (``host:port``), with the TLS and credentials of ``apiserver_job`` (one target per node,
    ``instance`` the node's name)."""
    return {
        **apiserver_job,
        "job_name": KUBELET_JOB,
        "scrape_interval": f"{KUBELET_SCRAPE_S}s",
        "scrape_timeout": f"{KUBELET_SCRAPE_S}s",
        "static_configs": [
            {
                "targets": [apiserver],
                "labels": {
                    "__metrics_path__": f"/api/v1/nodes/{node}/proxy/metrics",
                    "instance": node,
                },
            }
            for node in nodes
        ],
    }


def federated_up(prom: PrometheusClient, *, timeout_s: float) -> None:
    """Return once every federated job has Pods and all are up; TimeoutError after
    ``timeout_s`` naming what is missing."""
    deadline = time.monotonic() + timeout_s
    jobs = "|".join(FEDERATED_JOBS)
    missing: list[str] = []
    while True:
        try:
            samples = prom.instant(f'up{{job=~"{jobs}"}}', time.time())
        except HarnessError as exc:
            missing = [f"the query failed ({exc})"]
        else:
            up = {j: [v for labels, v in samples if labels.get("job") == j] for j in FEDERATED_JOBS}
            missing = [f"{j} (no Pod)" for j, v in up.items() if not v] + [
                f"{j} ({v.count(0.0)} Pod(s) down)" for j, v in up.items() if 0.0 in v
            ]
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"federated jobs not up: {', '.join(missing)}")
        time.sleep(0.5)
