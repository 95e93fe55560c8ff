"""The platform inside a cluster, certified from this host: ``--target kube --overlay kind``.

For an existing cluster of the user's (a staging cluster, a kind or k3d cluster made elsewhere):

1. check the host's observability binaries;
2. the kube target (:class:`KubeTarget`) connects with the kubeconfig and context given, refuses
   a cluster that is not marked as a test cluster unless ``--allow-context`` names the context,
   renders the single-cluster overlay (``kind``: the whole base, the kube runtime, a minimal
   Prometheus) with the refplat image the cluster can pull (``--image``; the overlay's
   ``refplat:dev`` exists only where ``kind load`` put it), applies it into ``gsh-<run id>``
   with the CRDs it needs, and waits for every rollout;
3. a tunnel (:class:`Tunnel`: supervised ``kubectl port-forward`` that follows the Service's
   ready Pods) to ``refplat-api`` and one to ``prometheus``, each on a loopback port fixed for
   the run; the API answers ``/readyz`` through it;
4. the harness's own observability on the host, as for kind (:mod:`harness.targets._kindhost`):
   Prometheus federating the in-cluster one through its tunnel (job ``refplat-federate``), the
   apiserver and each node's kubelet through the apiserver (the kubeconfig's credentials), the
   blackbox probe of the API through its tunnel, Alertmanager; then wait until the platform's
   series arrive.

Teardown, on every path: the host's processes and the tunnels (their moves are written to
``<run>/tunnels.json``), then the Nodes a fault cordoned or deleted are put back, then the run's
namespace is deleted. A killed run's namespace is deleted by the next ``harness`` command.

What the tunnels cost: a tunnel forwards to one Pod at a time; when that Pod leaves the
Service's ready endpoints (an API Pod deleted, drained or scaled away) the tunnel moves to
another one, and connections made during the move (a few hundred ms) are refused on this host.
So availability measured through a tunnel can be a little lower than through the Service; each
move is logged with its time. The kind target (:mod:`harness.targets._kind`) reaches the
Services through node ports instead, which go through the Service.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client as k8s

from harness.drivers.process import CHAOS_LEDGER, stop_ledger
from harness.drivers.prometheus import PrometheusClient
from harness.model import CAPABILITIES as ALL_CAPABILITIES
from harness.model import Endpoints, ProcessInfo
from harness.targets._kindhost import PROMETHEUS_JOBS, federated_up, host_scrape_configs
from harness.targets._kube import (
    CALL_TIMEOUT_S,
    CAPABILITIES,
    KubeOptions,
    KubeTarget,
    resolve_kubeconfig,
)
from harness.targets._kubeobjects import namespace_for
from harness.targets._kubescrape import RULES as KUBE_RULES
from harness.targets._kubescrape import control_plane_scrape_configs
from harness.targets._kwok import RunNamespace, release_cluster
from harness.targets._localobs import LocalObservability
from harness.targets._localtopo import LocalTopology
from harness.targets._tunnel import Tunnel
from harness.util.errors import InfraError
from harness.util.http import wait_http_ok

log = logging.getLogger(__name__)

OBSERVABILITY_BINARIES = ("prometheus", "prometheus-blackbox-exporter", "prometheus-alertmanager")
OVERLAY = "kind"  # the single-cluster install: the platform, its runtime, a minimal Prometheus
# The Services the harness reaches, by (name, port name), and what says each is ready.
API_SERVICE = ("refplat-api", "http", "/readyz")
PROMETHEUS_SERVICE = ("prometheus", "web", "/-/ready")
TUNNELS_FILE = "tunnels.json"


def observability_binaries(target: str = "kube") -> dict[str, str]:
    """The host's Prometheus, blackbox exporter and Alertmanager; InfraError naming the missing."""
    found = {
        n: shutil.which(n) or shutil.which(n, path="/usr/sbin:/sbin")
        for n in OBSERVABILITY_BINARIES
    }
    missing = sorted(n for n, path in found.items() if path is None)
    if missing:
        raise InfraError(
            f"The {target} target judges the run with a Prometheus on this host and needs "
            f"{', '.join(missing)}; run scripts/setup.sh or install the Debian packages."
        )
    return {n: p for n, p in found.items() if p is not None}


@dataclass(frozen=True)
class InClusterOptions:
    """Which cluster, and the platform's image there."""

    repo_root: Path
    kubectl: Path
    kubeconfig: Path | None = None  # None: $KUBECONFIG or ~/.kube/config
    context: str | None = None  # None: the kubeconfig's current context
    allow_context: str | None = None
    image: str | None = None  # None: the overlay's (refplat:dev, present only where loaded)
    rollout_timeout_s: float = 300.0


class InClusterTarget(LocalObservability):
    """refplat deployed into a namespace of an existing cluster, reached through tunnels and
    observed from the host; tears down on exit (its processes, tunnels and namespace)."""

    name = "kube"
    capabilities = frozenset(CAPABILITIES)
    where = "in Pods of the cluster"

    def __init__(
        self,
        *,
        run_id: str,
        run_dir: Path,
        options: InClusterOptions,
        topology: LocalTopology | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(run_id=run_id, run_dir=run_dir, topology=topology or LocalTopology())
        self.options = options
        self.progress = progress or log.info
        self.kube: KubeTarget | None = None
        self.tunnels: list[Tunnel] = []
        self._scrape: list[dict[str, object]] = []  # federation, apiserver, kubelets

    # --- what the engine asks -----------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig in use, absolute."""
        return resolve_kubeconfig(self.options.kubeconfig)

    @property
    def context(self) -> str:
        """The context in use: as given, else (once connected) the kubeconfig's current one."""
        if self.kube is not None and self.kube.context:
            return self.kube.context
        return self.options.context or ""

    @property
    def namespaced(self) -> bool:
        """Never: the harness's own processes run on the host's loopback."""
        return False

    @property
    def capability_gaps(self) -> dict[str, str]:
        """Why the local target's faults are SKIPPED here: the platform runs in Pods."""
        why = f"the platform runs {self.where}, not as processes of this host"
        return dict.fromkeys(sorted(ALL_CAPABILITIES - self.capabilities), why)

    @property
    def prometheus_jobs(self) -> tuple[str, ...]:
        return PROMETHEUS_JOBS

    @property
    def run_namespace(self) -> RunNamespace:
        """The run's namespace and cluster (for the next command to delete after a crash)."""
        return RunNamespace(
            namespace=namespace_for(self.run_id),
            kubeconfig=str(self.kubeconfig),
            context=self.context,
        )

    def __enter__(self) -> InClusterTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise InfraError(f"The {self.name} target has not been deployed yet.")
        return self._endpoints

    def restart(self, name: str) -> Endpoints:
        """Kubernetes restarts the platform's Pods; the harness restarts nothing here."""
        raise InfraError(
            f"{name!r} is not a process of this host: on the {self.name} target the platform "
            f"runs {self.where} and Kubernetes replaces them."
        )

    # --- deploy and teardown ------------------------------------------------------------------

    def deploy(self) -> Endpoints:
        bins = self._check_tools()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        self.kube = KubeTarget(
            run_id=self.run_id,
            run_dir=self.run_dir,
            options=self._kube_options(),
            progress=self.progress,
        )
        inside = self.kube.deploy()
        api_url = self._reach(*API_SERVICE)
        federate = self._reach(*PROMETHEUS_SERVICE)
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
                **self._extra(),
                "incluster_prometheus_url": federate,
                "alertmanager_url": self._urls.get("alertmanager", ""),
            },
        )
        return self._endpoints

    def teardown(self) -> None:
        """The tunnels and the host's processes, then the Nodes faults changed, then the run's
        namespace."""
        try:
            self._close_tunnels()  # first: a tunnel whose kubectl is stopped under it moves
        finally:
            try:
                stop_ledger(self.run_dir / CHAOS_LEDGER)
                self.supervisor.stop_all()
            finally:
                if self.kube is not None:
                    release_cluster(self.kube, self.run_dir)

    # --- the steps a subclass changes ---------------------------------------------------------

    def _check_tools(self) -> dict[str, str]:
        return observability_binaries(self.name)

    def _prepare(self) -> None:
        """Make the cluster ready for the overlay (nothing here: it exists, its image is pulled)."""

    def _kube_options(self) -> KubeOptions:
        opts = self.options
        return KubeOptions(
            manifests_dir=opts.repo_root / "platform" / "manifests",
            kubectl=opts.kubectl,
            overlay=OVERLAY,
            kubeconfig=opts.kubeconfig,
            context=opts.context,
            allow_context=opts.allow_context,
            install_crds=True,
            rollout_timeout_s=opts.rollout_timeout_s,
            image=opts.image,
        )

    def _reach(self, service: str, port: str, ready: str) -> str:
        """``http://127.0.0.1:port`` of a tunnel to ``service``; wait until it answers."""
        assert self.kube is not None
        tunnel = Tunnel(
            kubectl=self.options.kubectl,
            kubeconfig=self.kubeconfig,
            context=self.context,
            namespace=self.kube.namespace,
            service=service,
            port=port,
            log_dir=self.run_dir / "logs",
            api=self.kube.admin_client,
            supervisor=self.supervisor,
        )
        self.tunnels.append(tunnel)
        self.progress(f"opening a tunnel to service/{service} (kubectl port-forward)")
        url = tunnel.start()
        try:
            wait_http_ok(url + ready, timeout_s=self.topology.ready_timeout_s, what=service)
        except TimeoutError as exc:
            raise InfraError(
                f"{exc}, through the tunnel to pod/{tunnel.pod} of service/{service} "
                f"(log: {tunnel.log_path})."
            ) from exc
        return url

    def _extra(self) -> dict[str, str]:
        return {"tunnels": ",".join(f"{t.service}={t.url}" for t in self.tunnels)}

    # --- internals ----------------------------------------------------------------------------

    def _close_tunnels(self) -> None:
        for tunnel in self.tunnels:
            tunnel.stop()
        if self.tunnels:
            events = [asdict(e) for t in self.tunnels for e in t.events]
            (self.run_dir / TUNNELS_FILE).write_text(json.dumps(events, indent=1) + "\n")
            moves = sum(t.moves for t in self.tunnels)
            if moves:
                self.progress(
                    f"the tunnels moved {moves} time(s) to another Pod during the run; "
                    f"when and why: {self.run_dir / TUNNELS_FILE}"
                )
        self.tunnels = []

    def _host_scrape_configs(self, federate: str) -> list[dict[str, object]]:
        """Federation from ``federate``, the apiserver, each node's kubelet (see
        :func:`host_scrape_configs`), with the kubeconfig's address and credentials."""
        assert self.kube is not None
        api = self.kube.admin_client()
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
        self.progress("waiting for the platform's series through federation")
        with PrometheusClient(prometheus_url, timeout_s=CALL_TIMEOUT_S) as prom:
            self._await("prometheus", lambda t: federated_up(prom, timeout_s=t))
        return prometheus_url

    def _extra_scrape_configs(self) -> list[dict[str, object]]:
        return self._scrape

    def _extra_rule_files(self) -> list[str]:
        return [str(KUBE_RULES)]

    def _local_processes(self) -> tuple[ProcessInfo, ...]:
        return tuple(
            ProcessInfo(name=p.name, role=p.role, pid=p.pid, url=self._urls.get(p.name, ""))
            for p in self.supervisor.processes.values()
        )
