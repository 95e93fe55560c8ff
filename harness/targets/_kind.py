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

Everything after the cluster is the in-cluster target's (:mod:`harness.targets._incluster`),
with node ports in place of its tunnels: the host runs the local target's Prometheus, blackbox
exporter and Alertmanager, federating the in-cluster Prometheus through its NodePort as job
``refplat-federate`` (``honor_labels``, not ``honor_timestamps``, so a Pod that goes away makes
its series stale at once), and scrapes the apiserver and each kubelet through the apiserver.
Game servers are Pods whose addresses the host cannot reach, so the run has no SLP probe of
them.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from harness.targets._containers import container_engine_problem
from harness.targets._incluster import (
    InClusterOptions,
    InClusterTarget,
    observability_binaries,
)
from harness.targets._kindhost import (
    API_NODE_PORT,
    NODE_PORTS,
    PROMETHEUS_NODE_PORT,
    check_free,
    host_ports,
    parse_engine_ports,
    published_at,
)
from harness.targets._kube import MARKER_NAMESPACE, TEST_CLUSTER_MARKER, KubeOptions
from harness.targets._localtopo import LocalTopology
from harness.util.errors import InfraError
from harness.util.http import wait_http_ok

log = logging.getLogger(__name__)

IMAGE = "refplat:dev"  # what overlays/kind/kustomization.yaml expects
CREATE_TIMEOUT_S = 600  # pulling kindest/node on a cold runner takes minutes
BUILD_TIMEOUT_S = 900
LOAD_TIMEOUT_S = 300
KIND_INSTALL = "go install sigs.k8s.io/kind@v0.29.0"
SERVICE_NODE_PORTS = dict(NODE_PORTS)


def kind_problem() -> str | None:
    """None when the kind target can run here; else why not (a sentence for a skip or error)."""
    engine = container_engine_problem()
    if engine is not None:
        return engine
    if shutil.which("kind") is None:
        return f"kind not found on PATH; install it with `{KIND_INSTALL}`"
    return None


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


class KindTarget(InClusterTarget):
    """A kind cluster with refplat deployed into a namespace of the run, observed from the host;
    tears down on exit (the run's processes, its namespace, the cluster when it made it)."""

    name = "kind"
    where = "in Pods of the kind cluster"

    def __init__(
        self,
        *,
        run_id: str,
        run_dir: Path,
        options: KindOptions,
        topology: LocalTopology | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.kind = options
        self.created_cluster = False
        self._ports: dict[int, tuple[str, int]] = {}
        super().__init__(
            run_id=run_id,
            run_dir=run_dir,
            options=InClusterOptions(
                repo_root=options.repo_root,
                kubectl=options.kubectl,
                kubeconfig=run_dir / "kubeconfig",
                context=f"kind-{options.cluster_name}",
                rollout_timeout_s=options.rollout_timeout_s,
            ),
            topology=topology,
            progress=progress,
        )

    def teardown(self) -> None:
        """The in-cluster target's teardown, then the cluster when this run created it."""
        try:
            super().teardown()
        finally:
            if self.created_cluster:
                self.created_cluster = False
                self._run(
                    ["kind", "delete", "cluster", "--name", self.kind.cluster_name],
                    timeout_s=CREATE_TIMEOUT_S,
                    what="deleting the kind cluster",
                )

    # --- the in-cluster target's steps, for kind ----------------------------------------------

    def _check_tools(self) -> dict[str, str]:
        problem = kind_problem()
        if problem is not None:
            raise InfraError(f"The kind target cannot run here: {problem}.")
        return observability_binaries(self.name)

    def _prepare(self) -> None:
        """The cluster (created or reused), marked as a test cluster, with the image loaded."""
        self._ports = host_ports(self.kind.config_file)
        self._ensure_cluster(self._ports)
        self._mark_test_cluster()
        self._build_and_load_image()

    def _kube_options(self) -> KubeOptions:
        """The in-cluster target's, with the two Services on the node ports the cluster config
        publishes."""
        return replace(super()._kube_options(), node_ports=NODE_PORTS)

    def _reach(self, service: str, port: str, ready: str) -> str:
        """``http://host:port`` where the cluster publishes ``service``; wait until it answers."""
        node_port = SERVICE_NODE_PORTS[service]
        address, host_port = published_at(self.kind.config_file, self._ports, node_port)
        url = f"http://{address}:{host_port}"
        try:
            wait_http_ok(url + ready, timeout_s=self.topology.ready_timeout_s, what=service)
        except TimeoutError as exc:
            name = self.kind.cluster_name
            raise InfraError(
                f"{exc}. Service {service} is NodePort {node_port} in the cluster, published on "
                f"{address}:{host_port} by the port mappings of {self.kind.config_file}; a kind "
                f"cluster {name} created otherwise has none: delete it with `kind delete cluster "
                f"--name {name}` and run again."
            ) from exc
        return url

    def _extra(self) -> dict[str, str]:
        return {"kind_cluster": self.kind.cluster_name}

    # --- the cluster ------------------------------------------------------------------------

    def _ensure_cluster(self, ports: dict[int, tuple[str, int]]) -> None:
        name = self.kind.cluster_name
        existing = self._run(["kind", "get", "clusters"], timeout_s=60, what="listing clusters")
        if name in existing.split():
            self.progress(f"reusing kind cluster {name} (kept after the run)")
            self.kubeconfig.write_text(
                self._run(["kind", "get", "kubeconfig", "--name", name], timeout_s=60, what="")
            )
            self.kubeconfig.chmod(0o600)
            self._check_reused(ports)
            return
        config = self.kind.config_file
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
        name, config = self.kind.cluster_name, self.kind.config_file
        node = f"{name}-control-plane"
        out = self._run(
            [self.kind.engine, "port", node], timeout_s=60, what=f"reading the ports of {node}"
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
                str(self.kind.kubectl),
                f"--kubeconfig={self.kubeconfig}",
                f"--context={self.context}",
                *("apply", "--server-side", "--field-manager=gsharness", "-f", "-"),
            ],
            timeout_s=60,
            what="marking the cluster as a test cluster",
            stdin=marker,
        )

    def _build_and_load_image(self) -> None:
        root, engine = self.kind.repo_root, self.kind.engine
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
            ["kind", "load", "docker-image", IMAGE, "--name", self.kind.cluster_name],
            timeout_s=LOAD_TIMEOUT_S,
            what=f"loading {IMAGE} into the kind cluster",
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
