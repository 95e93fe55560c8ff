"""A real Kubernetes control plane as plain processes on 127.0.0.1, with KWOK faking the nodes.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler are the upstream programs built
by ``scripts/kube-build.sh`` from ``fixtures/kube/go.mod``; kwok keeps fake Nodes Ready and marks
the pods bound to them Running. API validation, admission, RBAC, garbage collection, scheduling
and watches are real; containers, images, pod networking (pod IPs come from a fake CIDR and
nothing listens there), logs and exec are not.

Start order: PKI -> etcd -> kube-apiserver (/readyz) -> controller-manager, scheduler, kwok ->
fake Nodes (Ready) -> the ``default`` ServiceAccount (pods are admitted from then on). Every
process is owned by one ``Supervisor`` and stopped on every exit path, Ctrl-C included; a
``detach=True`` cluster (``harness cluster up``) is stopped only when its start fails, and
otherwise outlives its owner: each process leads its own session, and the Supervisor's ledger
(``<work_dir>/ledger.json``) lets a later command stop them by pid.
"""

from __future__ import annotations

import logging
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from kubernetes import client as k8s

from harness.drivers.process import Supervisor, stop_processes
from harness.targets._kubeobjects import crd_established
from harness.targets._pki import (
    ADMIN,
    CONTROLLER_MANAGER,
    FRONT_PROXY,
    SCHEDULER,
    ClientIdentity,
    ClusterPki,
    KeyPair,
    write_pki,
)
from harness.util import http
from harness.util.errors import InfraError
from harness.util.net import free_port

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
)
STOP_TIERS = (("kwok", "kube-scheduler", "kube-controller-manager"), ("kube-apiserver",))
SERVICE_CIDR = "10.96.0.0/16"
FAKE_POD_CIDR = "10.0.0.0/16"  # kwok hands these out as pod IPs; no traffic ever goes there
CLIENT_QPS = 500  # the defaults (about 20) make thousands of pods take many minutes
CLIENT_BURST = 1000
NODE_ALLOCATABLE = {"cpu": "32", "memory": "256Gi", "pods": "110", "ephemeral-storage": "1Ti"}
NODE_PREFIX = "kwok-node-"
EVENT_TTL = "10m"  # keeps etcd small at scale
# Prometheus' identity: the bootstrap ClusterRole system:monitoring (bound to this group) allows
# GET /metrics and nothing else, on the apiserver and, by delegated authorization, on the
# scheduler and the controller-manager.
MONITORING = ClientIdentity("gsharness-prometheus", ("system:monitoring",))
CALL_TIMEOUT_S = 10.0
# A ConfigMap in kube-system: the ``host:port`` of each control-plane component's /metrics.
CONTROL_PLANE_ENDPOINTS = "gsharness-control-plane"
NODE_MONITOR_GRACE = "5m"
NODE_LEASE_S = 40


def kube_bin_dir(repo_root: Path) -> Path | None:
    """The cached bin dir of ``scripts/kube-build.sh`` when every binary is there, else None.

    Asks the script for the dir (``--print-dir`` builds nothing), so the cache key is computed
    in one place only.
    """
    script = repo_root / "scripts" / "kube-build.sh"
    try:
        out = subprocess.run(
            ["bash", str(script), "--print-dir"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    if not lines:
        return None
    bin_dir = Path(lines[-1])
    return bin_dir if all(os.access(bin_dir / b, os.X_OK) for b in BINARIES) else None


class KubeCluster:
    """Start the control plane and ``nodes`` KWOK nodes on enter; stop everything on exit."""

    def __init__(
        self,
        *,
        bin_dir: Path,
        work_dir: Path,
        nodes: int = 3,
        ready_timeout_s: float = 120,
        detach: bool = False,
    ) -> None:
        missing = [b for b in BINARIES if not os.access(bin_dir / b, os.X_OK)]
        if missing:
            raise InfraError(
                f"The Kubernetes binaries {', '.join(missing)} are missing from {bin_dir}; "
                "run scripts/kube-build.sh."
            )
        self.bin_dir = bin_dir
        self.work_dir = work_dir
        self.nodes = nodes
        self.ready_timeout_s = ready_timeout_s
        self.detach = detach
        self.port = free_port(HOST)
        self.api_url = f"https://{HOST}:{self.port}"
        self.kubeconfig = work_dir / "kubeconfig"
        self.etcd_url = ""
        self.scheduler_port = 0
        self.controller_manager_port = 0
        self.kwok_port = free_port(HOST)
        self.supervisor = Supervisor(work_dir)
        self._pki: ClusterPki | None = None
        self._deadline = 0.0

    def __enter__(self) -> KubeCluster:
        try:
            self.start()
        except BaseException:  # Ctrl-C and start-up failures alike: leave nothing running
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.detach or exc is not None:
            self.stop()

    @property
    def pki(self) -> ClusterPki:
        if self._pki is None:
            raise InfraError("The cluster's PKI does not exist yet; enter the KubeCluster first.")
        return self._pki

    def start(self) -> None:
        """The start-up pipeline; each step waits for what the next one needs."""
        started = time.monotonic()
        self._deadline = started + self.ready_timeout_s
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._pki = write_pki(
            self.work_dir / "pki", (ADMIN, CONTROLLER_MANAGER, SCHEDULER, FRONT_PROXY, MONITORING)
        )
        self._start_etcd()
        self._start_apiserver()
        self._write_kubeconfig(self.kubeconfig, ADMIN)
        self._start_controller_manager()
        self._start_scheduler()
        self._start_kwok()
        self._create_nodes()
        self._wait("the KWOK nodes to be Ready", self._nodes_ready)
        self._wait("the default ServiceAccount", self._default_service_account_exists)
        self._publish_control_plane()
        log.info("kube cluster ready at %s in %.1f s", self.api_url, time.monotonic() - started)

    def stop(self) -> None:
        """Stop the clients of the apiserver first, then the apiserver, then etcd."""
        procs = self.supervisor.processes
        for tier in STOP_TIERS:
            stop_processes([procs[name] for name in tier if name in procs])
        self.supervisor.stop_all()

    def api_client(self) -> k8s.ApiClient:
        """A Kubernetes API client authenticated as the admin (``system:masters``)."""
        admin = self.pki.clients[ADMIN.user]
        config = k8s.Configuration(
            host=self.api_url,
            ssl_ca_cert=str(self.pki.ca.cert),
            cert_file=str(admin.cert),
            key_file=str(admin.key),
        )
        return k8s.ApiClient(config)

    @property
    def monitoring_client(self) -> KeyPair:
        """The client certificate of Prometheus (group ``system:monitoring``: GET /metrics)."""
        return self.pki.clients[MONITORING.user]

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each running process, by name (for reports and benchmarks)."""
        usage = {}
        for name, proc in self.supervisor.processes.items():
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    usage[name] = int(line.split()[1]) * 1024
        return usage

    def _start_etcd(self) -> None:
        client, peer = free_port(HOST), free_port(HOST)
        self.etcd_url = f"http://{HOST}:{client}"
        argv = [
            str(self.bin_dir / "etcd"),
            "--name=default",
            f"--data-dir={self.work_dir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls=http://{HOST}:{peer}",
            f"--initial-advertise-peer-urls=http://{HOST}:{peer}",
            f"--initial-cluster=default=http://{HOST}:{peer}",
            "--quota-backend-bytes=8589934592",
            "--log-level=warn",
        ]
        if "--unsafe-no-fsync" in self._help_text("etcd"):
            argv.append("--unsafe-no-fsync")  # etcd 3.5+; a test cluster needs no durability
        self.supervisor.start("etcd", argv, role="kube-etcd")
        self._wait("etcd", lambda: http.request("GET", f"{self.etcd_url}/health", timeout_s=2).ok)

    def _start_apiserver(self) -> None:
        pki = self.pki
        proxy = pki.clients[FRONT_PROXY.user]
        argv = [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            f"--bind-address={HOST}",
            f"--secure-port={self.port}",
            # A loopback advertise address fails validation unless no reconciler writes it
            # into the `kubernetes` Endpoints.
            f"--advertise-address={HOST}",
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki.serving.cert}",
            f"--tls-private-key-file={pki.serving.key}",
            f"--client-ca-file={pki.ca.cert}",
            # The front proxy (aggregation layer); without it the controller-manager and the
            # scheduler log an error for the missing requestheader CA bundle every few seconds.
            f"--requestheader-client-ca-file={pki.ca.cert}",
            f"--requestheader-allowed-names={FRONT_PROXY.user}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={proxy.cert}",
            f"--proxy-client-key-file={proxy.key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.sa_public_key}",
            f"--service-account-signing-key-file={pki.sa_private_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=RBAC",
            "--allow-privileged=true",
            f"--event-ttl={EVENT_TTL}",
            f"--cert-dir={self.work_dir / 'apiserver-certs'}",
        ]
        self.supervisor.start("kube-apiserver", argv, role="kube-apiserver")
        self._wait("kube-apiserver /readyz", lambda: self._api_status("/readyz") == 200)

    def _start_controller_manager(self) -> None:
        pki = self.pki
        kubeconfig = self._write_kubeconfig(
            self.work_dir / "controller-manager.kubeconfig", CONTROLLER_MANAGER
        )
        self.controller_manager_port = free_port(HOST)
        argv = [
            str(self.bin_dir / "kube-controller-manager"),
            *_component_flags(kubeconfig, self.controller_manager_port, self.work_dir / "cm-certs"),
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            f"--root-ca-file={pki.ca.cert}",
            f"--service-account-private-key-file={pki.sa_private_key}",
            f"--cluster-signing-cert-file={pki.ca.cert}",
            f"--cluster-signing-key-file={pki.ca.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--kube-api-qps={CLIENT_QPS}",
            f"--kube-api-burst={CLIENT_BURST}",
            "--concurrent-deployment-syncs=10",
            "--concurrent-replicaset-syncs=10",
            "--concurrent-gc-syncs=40",
            # kwok heartbeats every node from one process; on a shared 2-core machine it can be
            # starved for longer than the default 50 s, and the node-lifecycle controller then
            # marks nodes NotReady and their pods not Ready (seen at 1,000 pods with a load
            # average of 12). A fault test deletes or drains nodes instead of waiting for this.
            f"--node-monitor-grace-period={NODE_MONITOR_GRACE}",
        ]
        self.supervisor.start("kube-controller-manager", argv, role="kube-controller-manager")

    def _start_scheduler(self) -> None:
        kubeconfig = self._write_kubeconfig(self.work_dir / "scheduler.kubeconfig", SCHEDULER)
        config = self.work_dir / "scheduler.yaml"
        # QPS and burst must be in the config file: the flags are ignored when --config is given.
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {
                        "kubeconfig": str(kubeconfig),
                        "qps": CLIENT_QPS,
                        "burst": CLIENT_BURST,
                    },
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        self.scheduler_port = free_port(HOST)
        argv = [
            str(self.bin_dir / "kube-scheduler"),
            f"--config={config}",
            *_component_flags(kubeconfig, self.scheduler_port, self.work_dir / "scheduler-certs"),
        ]
        self.supervisor.start("kube-scheduler", argv, role="kube-scheduler")

    def _start_kwok(self) -> None:
        with self.api_client() as api:  # kwok watches PortForwards: the types must exist first
            for crd in PORT_FORWARD_CRDS:
                _apply_crd(api, crd)
            self._wait(
                "kwok's PortForward CRDs",
                lambda: all(_crd_established(api, crd) for crd in PORT_FORWARD_CRDS),
            )
        argv = [
            str(self.bin_dir / "kwok"),
            f"--kubeconfig={self.kubeconfig}",
            "--manage-all-nodes=true",
            f"--cidr={FAKE_POD_CIDR}",
            f"--node-ip={HOST}",
            # Heartbeat the nodes with Leases (kube-node-lease): without this flag kwok only
            # patches each Node's status now and then (222 patches for 100 nodes in 12 minutes
            # at 10,000 pods), and the node-lifecycle controller marks nodes NotReady and their
            # pods not Ready once the grace period below has passed.
            f"--node-lease-duration-seconds={NODE_LEASE_S}",
            # kwok's server stands in for each fake node's kubelet: the apiserver dials it (the
            # Node's InternalIP and kubeletEndpoint port) for `kubectl port-forward`, which it
            # serves as the PortForward objects in the cluster say (:data:`PORT_FORWARD_CRDS`).
            f"--server-address={HOST}:{self.kwok_port}",
            f"--node-port={self.kwok_port}",
            "--enable-crds=PortForward,ClusterPortForward",
            # Renew each fake node's Lease: without leases the node controller sees the nodes'
            # status go stale and marks them (and every pod on them) NotReady for ~5 s a minute.
            "--node-lease-duration-seconds=40",
        ]
        # kwok reads ~/.kwok/kwok.yaml by default; point it at an empty directory instead.
        env = {"HOME": str(self.work_dir / "kwok-home")}
        (self.work_dir / "kwok-home").mkdir(exist_ok=True)
        self.supervisor.start("kwok", argv, role="kwok", env=env)

    def _create_nodes(self) -> None:
        version = self._version()
        with self.api_client() as api:
            core = k8s.CoreV1Api(api)
            for i in range(self.nodes):
                node = _fake_node(f"{NODE_PREFIX}{i}", version, kubelet_port=self.kwok_port)
                body = k8s.V1Node.from_dict(node)
                assert body is not None  # from_dict returns None only for None
                core.create_node(body=body, _request_timeout=CALL_TIMEOUT_S)

    def _publish_control_plane(self) -> None:
        """Say where the scheduler and the controller-manager serve ``/metrics`` (only the
        apiserver's address is in a kubeconfig), for the kube target's Prometheus."""
        body = k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(name=CONTROL_PLANE_ENDPOINTS, namespace="kube-system"),
            data={
                "kube-scheduler": f"{HOST}:{self.scheduler_port}",
                "kube-controller-manager": f"{HOST}:{self.controller_manager_port}",
            },
        )
        with self.api_client() as api:
            k8s.CoreV1Api(api).create_namespaced_config_map(
                "kube-system", body, _request_timeout=CALL_TIMEOUT_S
            )

    def _nodes_ready(self) -> bool:
        with self.api_client() as api:
            nodes = k8s.CoreV1Api(api).list_node(_request_timeout=CALL_TIMEOUT_S).items
        ready = {
            n.metadata.name
            for n in nodes
            if n.metadata is not None
            and n.status is not None
            and any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
        }
        return all(f"{NODE_PREFIX}{i}" in ready for i in range(self.nodes))

    def _default_service_account_exists(self) -> bool:
        with self.api_client() as api:
            accounts = k8s.CoreV1Api(api).list_namespaced_service_account(
                "default", _request_timeout=CALL_TIMEOUT_S
            )
        return any(a.metadata is not None and a.metadata.name == "default" for a in accounts.items)

    def _version(self) -> str:
        status, body = self._api_get("/version")
        return str(yaml.safe_load(body)["gitVersion"]) if status == 200 else "v0.0.0"

    def _wait(self, what: str, ready: Callable[[], bool]) -> None:
        """Poll ``ready`` until the start-up deadline, failing fast when a process died."""
        while True:
            for name in self.supervisor.processes:
                self.supervisor.check_alive(name)
            try:
                if ready():
                    return
            except (k8s.ApiException, OSError) as exc:  # not up yet: try again
                log.debug("waiting for %s: %s", what, exc)
            if time.monotonic() > self._deadline:
                raise InfraError(
                    f"The kube cluster in {self.work_dir} did not get {what} within "
                    f"{self.ready_timeout_s:g} s; see the logs in {self.work_dir / 'logs'}."
                )
            time.sleep(0.2)

    def _api_status(self, path: str) -> int:
        return self._api_get(path)[0]

    def _api_get(self, path: str) -> tuple[int, bytes]:
        admin = self.pki.clients[ADMIN.user]
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        context.load_cert_chain(str(admin.cert), str(admin.key))
        try:
            with urllib.request.urlopen(
                self.api_url + path, timeout=CALL_TIMEOUT_S, context=context
            ) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code, b""
        except (urllib.error.URLError, OSError):
            return 0, b""

    def _write_kubeconfig(self, path: Path, who: ClientIdentity) -> Path:
        pair = self.pki.clients[who.user]
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "gsharness",
                    "cluster": {
                        "server": self.api_url,
                        "certificate-authority": str(self.pki.ca.cert),
                    },
                }
            ],
            "users": [
                {
                    "name": who.user,
                    "user": {"client-certificate": str(pair.cert), "client-key": str(pair.key)},
                }
            ],
            "contexts": [
                {"name": "gsharness", "context": {"cluster": "gsharness", "user": who.user}}
            ],
            "current-context": "gsharness",
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path

    def _help_text(self, binary: str) -> str:
        out = subprocess.run(
            [str(self.bin_dir / binary), "--help"], capture_output=True, text=True, timeout=30
        )
        return out.stdout + out.stderr


def _component_flags(kubeconfig: Path, port: int, cert_dir: Path) -> list[str]:
    """Flags the controller-manager and the scheduler share: API access and their own server."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={HOST}",
        f"--secure-port={port}",
        f"--cert-dir={cert_dir}",
    ]


def _fake_node(name: str, kubelet_version: str, *, kubelet_port: int) -> dict[str, Any]:
    """A Node kwok manages: allocatable resources, no kwok taint (unmodified manifests fit),
    its "kubelet" kwok's server on ``kubelet_port`` (port-forwards go there)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "status": {
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "allocatable": NODE_ALLOCATABLE,
            "capacity": NODE_ALLOCATABLE,
            # Every field the API marks required (the Python client validates them on read).
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": kubelet_version,
                "kubeProxyVersion": kubelet_version,
                "containerRuntimeVersion": "kwok://fake",
                "kernelVersion": "fake",
                "osImage": "fake",
                "bootID": name,
                "machineID": name,
                "systemUUID": name,
            },
        },
    }


# kwok's port-forward configuration (kwok.x-k8s.io/v1alpha1): which ports of a Pod kwok's server
# forwards, and where to (``spec.forwards[]``: ``ports`` matched against the Pod port asked for,
# none meaning all; ``target``: ``address`` and ``port``). A PortForward, named after its Pod,
# serves that Pod; a ClusterPortForward serves the Pods its ``selector`` picks
# (``matchNamespaces``, ``matchNames``). Declared here with the fields kwok reads and no more, so
# the cluster needs nothing from kwok's source tree.
_FORWARDS: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "ports": {"type": "array", "items": {"type": "integer"}},
            "target": {
                "type": "object",
                "properties": {"address": {"type": "string"}, "port": {"type": "integer"}},
            },
            "command": {"type": "array", "items": {"type": "string"}},
        },
    },
}
_SELECTOR: dict[str, Any] = {
    "type": "object",
    "properties": {
        "matchNamespaces": {"type": "array", "items": {"type": "string"}},
        "matchNames": {"type": "array", "items": {"type": "string"}},
    },
}


def _kwok_crd(kind: str, *, scope: str, spec: dict[str, Any]) -> dict[str, Any]:
    plural = kind.lower() + "s"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kwok.x-k8s.io"},
        "spec": {
            "group": "kwok.x-k8s.io",
            "scope": scope,
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural,
                      "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": spec},
                                "status": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                },
                            },
                        }
                    },
                }
            ],
        },
    }  # fmt: skip


PORT_FORWARD_CRDS = (
    _kwok_crd("PortForward", scope="Namespaced", spec={"forwards": _FORWARDS}),
    _kwok_crd("ClusterPortForward", scope="Cluster",
              spec={"forwards": _FORWARDS, "selector": _SELECTOR}),
)  # fmt: skip


def _apply_crd(api: k8s.ApiClient, crd: dict[str, Any]) -> None:
    """Create ``crd`` unless it exists (the cluster is new; nothing else makes it)."""
    try:
        k8s.ApiextensionsV1Api(api).create_custom_resource_definition(
            body=crd,  # type: ignore[arg-type]  # the client sends a dict as it is
            _request_timeout=CALL_TIMEOUT_S,
        )
    except k8s.ApiException as exc:
        if exc.status != 409:
            raise InfraError(f"creating CRD {crd['metadata']['name']}: HTTP {exc.status}") from exc


def _crd_established(api: k8s.ApiClient, crd: dict[str, Any]) -> bool:
    found = k8s.ApiextensionsV1Api(api).read_custom_resource_definition(
        crd["metadata"]["name"], _request_timeout=CALL_TIMEOUT_S
    )
    return crd_established(found.to_dict())


def forward_pods(
    api: k8s.ApiClient, *, name: str, namespace: str, targets: dict[int, tuple[str, int]]
) -> None:
    """Make kwok's server forward port P of every Pod in ``namespace`` to ``targets[P]`` (an
    ``(address, port)`` of this host), as the ClusterPortForward ``name``: a `kubectl
    port-forward` to such a Pod, or to a Service in front of it, reaches that process."""
    body = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ClusterPortForward",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchNamespaces": [namespace]},
            "forwards": [
                {"ports": [port], "target": {"address": address, "port": to}}
                for port, (address, to) in sorted(targets.items())
            ],
        },
    }
    k8s.CustomObjectsApi(api).create_cluster_custom_object(
        "kwok.x-k8s.io", "v1alpha1", "clusterportforwards", body, _request_timeout=CALL_TIMEOUT_S
    )
