"""The ``kind`` target: refplat deployed inside a kind cluster, certified from the host.

Pipeline: check the tools (a container engine answering, ``kind`` on PATH, the observability
binaries) -> the cluster (reuse the kind cluster of that name when it exists and publishes the
node ports where the config says, and keep it; else check the host ports are free, create it
from ``fixtures/kind/cluster.yaml`` and delete it at teardown) -> mark it as a test cluster (the
ConfigMap the kube target looks for; a kind cluster is a throwaway by nature) -> build
``platform/Containerfile`` as ``refplat:dev`` -> ``kind load docker-image`` -> the kube target
with the ``kind`` overlay, the CRDs of ``platform/manifests/crds`` and the Services
``refplat-api`` and ``prometheus`` made NodePorts (:data:`NODE_PORTS`) -> the harness's own
observability on the host -> wait until the platform's series arrive there.

Teardown, on every path: the host's processes, then the Nodes a fault cordoned or deleted are
put back (a reused cluster outlives the run), the run's namespace is deleted, and the cluster
when the run created it. A killed run's namespace is deleted by the next ``harness`` command
(its entry in ``.harness/runs`` names it); a cluster it created is left.

Reaching the platform: Pod and Service addresses are not routable from the host, so the harness
goes through the two NodePorts, which the control-plane node's ``extraPortMappings`` publish on
the host's loopback (containerPort = nodePort; the host ports are read from the cluster config).
A nodePort is unique in a cluster, so one run per cluster at a time; a cluster made without those
mappings is refused with the command that deletes it.

Observability (a choice): the host runs the local target's Prometheus, blackbox exporter and
Alertmanager (:class:`LocalObservability`), because the certify engine judges from jobs only the
host can have (``probe-api``: the blackbox probe of the API's NodePort, Locust's metrics) and
waits for Prometheus's scrape targets. The refplat series come from the in-cluster Prometheus
(``overlays/kind/prometheus.yml``: the API, controller and runtime Pods every second), federated
through its NodePort as job ``refplat-federate`` (``honor_labels``, so ``job`` and ``instance``
are the in-cluster ones; not ``honor_timestamps``, so a Pod that goes away makes its series
stale at once instead of lingering five minutes). Kubernetes' own SLIs are scraped directly: the
apiserver at the kubeconfig's address with its credentials (``kube-apiserver``), and each node's
kubelet through the apiserver's node proxy (``kubelet``: ``kubelet_pod_start_sli_duration_
seconds``). Game servers are Pods whose addresses the host cannot reach, so the kind run has no
SLP probe of them (``probe-gameservers`` stays empty; the seeding writes no probe targets), and
the target lists the Prometheus jobs it has (:data:`PROMETHEUS_JOBS`) for the engine to await.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from harness.drivers.process import CHAOS_LEDGER, stop_ledger
from harness.drivers.prometheus import PrometheusClient
from harness.model import CAPABILITIES as ALL_CAPABILITIES
from harness.model import Endpoints, ProcessInfo
from harness.targets._containers import container_engine_problem
from harness.targets._kindhost import (
    API_NODE_PORT,
    NODE_PORTS,
    PROMETHEUS_JOBS,
    PROMETHEUS_NODE_PORT,
    check_free,
    federated_up,
    host_ports,
    host_scrape_configs,
    parse_engine_ports,
    published_at,
)
from harness.targets._kube import (
    CALL_TIMEOUT_S,
    CAPABILITIES,
    MARKER_NAMESPACE,
    TEST_CLUSTER_MARKER,
    KubeOptions,
    KubeTarget,
)
from harness.targets._kubeobjects import namespace_for
from harness.targets._kubescrape import RULES as KUBE_RULES
from harness.targets._kubescrape import control_plane_scrape_configs
from harness.targets._kwok import RunNamespace, put_back_nodes
from harness.targets._localobs import LocalObservability
from harness.targets._localtopo import LocalTopology
from harness.util.errors import InfraError
from harness.util.http import wait_http_ok

log = logging.getLogger(__name__)

IMAGE = "refplat:dev"  # what overlays/kind/kustomization.yaml expects
CREATE_TIMEOUT_S = 600  # pulling kindest/node on a cold runner takes minutes
BUILD_TIMEOUT_S = 900
LOAD_TIMEOUT_S = 300
KIND_INSTALL = "go install sigs.k8s.io/kind@v0.29.0"
OBSERVABILITY_BINARIES = ("prometheus", "prometheus-blackbox-exporter", "prometheus-alertmanager")
PLATFORM_PODS = "in Pods of the kind cluster"


def kind_problem() -> str | None:
    """None when the kind target can run here; else why not (a sentence for a skip or error)."""
    engine = container_engine_problem()
    if engine is not None:
        return engine
    if shutil.which("kind") is None:
        return f"kind not found on PATH; install it with `{KIND_INSTALL}`"
    return None


def observability_binaries() -> dict[str, str]:
    """The host's Prometheus, blackbox exporter and Alertmanager; InfraError naming the missing."""
    found = {
        n: shutil.which(n) or shutil.which(n, path="/usr/sbin:/sbin")
        for n in OBSERVABILITY_BINARIES
    }
    missing = sorted(n for n, path in found.items() if path is None)
    if missing:
        raise InfraError(
            f"The kind target judges the run with a Prometheus on this host and needs "
            f"{', '.join(missing)}; run scripts/setup.sh or install the Debian packages."
        )
    return {n: p for n, p in found.items() if p is not None}


@dataclass(frozen=True)
class KindOptions:
    """Which kind cluster, built from what."""

    repo_root: Path
    kubectl: Path
    cluster_name: str = "gsharness"
    cluster_config: Path | None = None  # None: <repo_root>/fixtures/kind/cluster.yaml
    engine: str = "docker"  # the CLI that builds the image (podman works through its alias)
    rollout_timeout_s: float = 300.0

    @property
    def config_file(self) -> Path:
        return self.cluster_config or self.repo_root / "fixtures" / "kind" / "cluster.yaml"


class KindTarget(LocalObservability):
    """A kind cluster with refplat deployed into a namespace of the run, observed from the host;
    tears down on exit (the run's processes, its namespace, the cluster when it made it)."""

    name = "kind"
    capabilities = frozenset(CAPABILITIES)

    def __init__(
        self,
        *,
        run_id: str,
        run_dir: Path,
        options: KindOptions,
        topology: LocalTopology | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(run_id=run_id, run_dir=run_dir, topology=topology or LocalTopology())
        self.options = options
        self.progress = progress or log.info
        self.kubeconfig = run_dir / "kubeconfig"
        self.context = f"kind-{options.cluster_name}"
        self.created_cluster = False
        self.kube: KubeTarget | None = None
        self._scrape: list[dict[str, object]] = []  # federation, apiserver, kubelets

    @property
    def namespaced(self) -> bool:
        """Never: the harness's own processes run on the host's loopback."""
        return False

    @property
    def capability_gaps(self) -> dict[str, str]:
        """Why the local target's faults are SKIPPED here: the platform runs in Pods."""
        why = f"the platform runs {PLATFORM_PODS}, not as processes of this host"
        return dict.fromkeys(sorted(ALL_CAPABILITIES - self.capabilities), why)

    @property
    def prometheus_jobs(self) -> tuple[str, ...]:
        return PROMETHEUS_JOBS

    @property
    def run_namespace(self) -> RunNamespace:
        """The run's namespace and cluster (for the next command to delete after a crash)."""
        return RunNamespace(
            namespace=namespace_for(self.run_id),
            kubeconfig=str(self.kubeconfig.resolve()),
            context=self.context,
        )

    def __enter__(self) -> KindTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise InfraError("The kind target has not been deployed yet.")
        return self._endpoints

    def restart(self, name: str) -> Endpoints:
        """Kubernetes restarts the platform's Pods; the harness restarts nothing here."""
        raise InfraError(
            f"{name!r} is not a process of this host: on the kind target the platform runs "
            f"{PLATFORM_PODS} and Kubernetes replaces them."
        )

    def deploy(self) -> Endpoints:
        problem = kind_problem()
        if problem is not None:
            raise InfraError(f"The kind target cannot run here: {problem}.")
        bins = observability_binaries()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        ports = host_ports(self.options.config_file)
        self._ensure_cluster(ports)
        self._mark_test_cluster()
        self._build_and_load_image()
        inside = self._deploy_overlay()
        api_url = self._host_url(ports, API_NODE_PORT, "refplat-api", "/readyz")
        federate = self._host_url(ports, PROMETHEUS_NODE_PORT, "prometheus", "/-/ready")
        scrape = self._host_scrape_configs(federate.removeprefix("http://"))
        prometheus_url = self._observe(bins, api_url=api_url, scrape=scrape)
        self._endpoints = Endpoints(
            run_id=self.run_id,
            target=self.name,
            run_dir=str(self.run_dir),
            api_url=api_url,
            admin_token_file=inside.admin_token_file,
            redis_url=inside.redis_url,  # in-cluster: for the platform, not the harness
            prometheus_url=prometheus_url,
            timeline_file=inside.timeline_file,
            capabilities=tuple(sorted(self.capabilities)),
            processes=(*inside.processes, *self._local_processes()),
            extra={
                **inside.extra,
                "kind_cluster": self.options.cluster_name,
                "incluster_prometheus_url": federate,
                "alertmanager_url": self._urls.get("alertmanager", ""),
            },
        )
        return self._endpoints

    def teardown(self) -> None:
        """The host's processes, then the Nodes faults changed, the run's namespace, and the
        cluster when this run created it."""
        try:
            stop_ledger(self.run_dir / CHAOS_LEDGER)
            self.supervisor.stop_all()
            self._restore_nodes()
            if self.kube is not None:
                self.kube.teardown()
        finally:
            if self.created_cluster:
                self.created_cluster = False
                self._run(
                    ["kind", "delete", "cluster", "--name", self.options.cluster_name],
                    timeout_s=CREATE_TIMEOUT_S,
                    what="deleting the kind cluster",
                )

    # --- the cluster ------------------------------------------------------------------------

    def _ensure_cluster(self, ports: dict[int, tuple[str, int]]) -> None:
        name = self.options.cluster_name
        existing = self._run(["kind", "get", "clusters"], timeout_s=60, what="listing clusters")
        if name in existing.split():
            self.progress(f"reusing kind cluster {name} (kept after the run)")
            self.kubeconfig.write_text(
                self._run(["kind", "get", "kubeconfig", "--name", name], timeout_s=60, what="")
            )
            self.kubeconfig.chmod(0o600)
            self._check_reused(ports)
            return
        config = self.options.config_file
        for node_port in (API_NODE_PORT, PROMETHEUS_NODE_PORT):
            check_free(config, ports, node_port)
        self.progress(f"creating kind cluster {name} from {config}")
        self.created_cluster = True  # a half-created cluster is deleted too
        self._run(
            [
                *("kind", "create", "cluster", "--name", name, "--config", str(config)),
                *("--kubeconfig", str(self.kubeconfig), "--wait", "180s"),
            ],
            timeout_s=CREATE_TIMEOUT_S,
            what="creating the kind cluster",
        )

    def _check_reused(self, ports: dict[int, tuple[str, int]]) -> None:
        """Refuse a reused cluster whose control-plane container does not publish the node ports
        where the cluster config says (a cluster created otherwise), before deploying into it."""
        name, config = self.options.cluster_name, self.options.config_file
        node = f"{name}-control-plane"
        out = self._run(
            [self.options.engine, "port", node], timeout_s=60, what=f"reading the ports of {node}"
        )
        published = parse_engine_ports(out)
        for node_port in (API_NODE_PORT, PROMETHEUS_NODE_PORT):
            want = published_at(config, ports, node_port)
            if want not in published.get(node_port, []):
                raise InfraError(
                    f"The kind cluster {name} does not publish nodePort {node_port} on "
                    f"{want[0]}:{want[1]} as {config} does (it publishes "
                    f"{published.get(node_port) or 'nothing'} for it): it was created otherwise. "
                    f"Delete it with `kind delete cluster --name {name}` and run again (the "
                    "harness then creates it from the config)."
                )

    def _mark_test_cluster(self) -> None:
        marker = (
            "apiVersion: v1\nkind: ConfigMap\n"
            f"metadata: {{name: {TEST_CLUSTER_MARKER}, namespace: {MARKER_NAMESPACE}}}\n"
        )
        self._run(
            [
                str(self.options.kubectl),
                f"--kubeconfig={self.kubeconfig}",
                f"--context={self.context}",
                *("apply", "--server-side", "--field-manager=gsharness", "-f", "-"),
            ],
            timeout_s=60,
            what="marking the cluster as a test cluster",
            stdin=marker,
        )

    def _build_and_load_image(self) -> None:
        root, engine = self.options.repo_root, self.options.engine
        self.progress(f"building {IMAGE} from platform/Containerfile with {engine}")
        self._run(
            [
                engine,
                "build",
                "-f",
                str(root / "platform" / "Containerfile"),
                "-t",
                IMAGE,
                str(root),
            ],
            timeout_s=BUILD_TIMEOUT_S,
            what=f"building {IMAGE}",
        )
        self._run(
            ["kind", "load", "docker-image", IMAGE, "--name", self.options.cluster_name],
            timeout_s=LOAD_TIMEOUT_S,
            what=f"loading {IMAGE} into the kind cluster",
        )

    def _deploy_overlay(self) -> Endpoints:
        opts = self.options
        self.kube = KubeTarget(
            run_id=self.run_id,
            run_dir=self.run_dir,
            options=KubeOptions(
                manifests_dir=opts.repo_root / "platform" / "manifests",
                kubectl=opts.kubectl,
                overlay="kind",
                kubeconfig=self.kubeconfig,
                context=self.context,
                install_crds=True,
                rollout_timeout_s=opts.rollout_timeout_s,
                node_ports=NODE_PORTS,
            ),
            progress=self.progress,
        )
        return self.kube.deploy()

    def _restore_nodes(self) -> None:
        """Uncordon (or create again) the Nodes a fault changed: a reused cluster outlives us."""
        if self.kube is not None and self.kube.context:
            put_back_nodes(self._admin_client, self.run_dir)

    def _admin_client(self) -> k8s.ApiClient:
        api: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig), context=self.context
        )
        return api

    # --- reaching it from the host ----------------------------------------------------------

    def _host_url(
        self, ports: dict[int, tuple[str, int]], node_port: int, service: str, ready: str
    ) -> str:
        """``http://host:port`` where the cluster publishes ``service``; wait until it answers."""
        address, port = published_at(self.options.config_file, ports, node_port)
        url = f"http://{address}:{port}"
        try:
            wait_http_ok(url + ready, timeout_s=self.topology.ready_timeout_s, what=service)
        except TimeoutError as exc:
            name = self.options.cluster_name
            raise InfraError(
                f"{exc}. Service {service} is NodePort {node_port} in the cluster, published on "
                f"{address}:{port} by the port mappings of {self.options.config_file}; a kind "
                f"cluster {name} created otherwise has none: delete it with `kind delete cluster "
                f"--name {name}` and run again."
            ) from exc
        return url

    def _host_scrape_configs(self, federate: str) -> list[dict[str, object]]:
        """Federation from ``federate``, the apiserver, each node's kubelet (see
        :func:`host_scrape_configs`), with the kind kubeconfig's address and credentials."""
        api = self._admin_client()
        try:
            jobs = control_plane_scrape_configs(api, self.run_dir / "secrets")
            nodes: Any = k8s.CoreV1Api(api).list_node(_request_timeout=CALL_TIMEOUT_S)
            apiserver = urlsplit(str(api.configuration.host)).netloc
        finally:
            api.close()  # type: ignore[no-untyped-call]
        return host_scrape_configs(
            federate=federate,
            control_plane=jobs,
            apiserver=apiserver,
            nodes=sorted(n.metadata.name for n in nodes.items),
        )

    def _observe(
        self, bins: dict[str, str], *, api_url: str, scrape: list[dict[str, object]]
    ) -> str:
        """Start the host's observability (no balancer, no node agent of its own; ``scrape``
        besides the local target's jobs) and wait for the federated series; its Prometheus URL."""
        self._scrape = scrape
        prometheus_url, _ = self._start_observability(
            bins, api_url=api_url, haproxy_stats="", jobs={"haproxy": []}
        )
        self._await_federated(prometheus_url)
        return prometheus_url

    def _extra_scrape_configs(self) -> list[dict[str, object]]:
        return self._scrape

    def _extra_rule_files(self) -> list[str]:
        return [str(KUBE_RULES)]

    def _await_federated(self, prometheus_url: str) -> None:
        """Wait until the federated ``up`` of every in-cluster job is 1 for all its Pods."""
        self.progress("waiting for the platform's series through federation")
        with PrometheusClient(prometheus_url, timeout_s=CALL_TIMEOUT_S) as prom:
            self._await("prometheus", lambda t: federated_up(prom, timeout_s=t))

    def _local_processes(self) -> tuple[ProcessInfo, ...]:
        return tuple(
            ProcessInfo(name=p.name, role=p.role, pid=p.pid, url=self._urls.get(p.name, ""))
            for p in self.supervisor.processes.values()
        )

    def _run(self, argv: list[str], *, timeout_s: float, what: str, stdin: str = "") -> str:
        try:
            out = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout_s, input=stdin or None
            )
        except subprocess.TimeoutExpired as exc:
            raise InfraError(
                f"{what or argv[0]}: `{' '.join(argv)}` took over {timeout_s:g} s."
            ) from exc
        if out.returncode != 0:
            tail = "\n".join(out.stderr.strip().splitlines()[-10:])
            raise InfraError(
                f"{what or argv[0]}: `{' '.join(argv)}` failed (exit {out.returncode}):\n{tail}"
            )
        return out.stdout
