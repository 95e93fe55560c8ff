"""The ``kube`` target on KWOK nodes: refplat's control plane local, its game servers Pods.

The kwok overlay (``platform/manifests/overlays/kwok``) puts only what the kube runtime needs in
the cluster: the namespace (Pod Security ``restricted``), the controller's ServiceAccount and its
Role. Everything else runs as on the local target, beside the cluster: Redis, the API replicas
behind HAProxy, the controllers, Prometheus. In place of the node agents run ``refplat
kube-agent`` processes, one per platform node, each making the game servers of its node Pods in
the run's namespace; KWOK marks them Running and Ready.

Deploy pipeline:

1. apply the kwok overlay into the run's namespace ``gsh-<run id>`` (:class:`KubeTarget`);
2. write a kubeconfig for the overlay's ServiceAccount (a TokenRequest token; its Role is
   the runtime's least privilege) into the run's ``secrets`` dir;
3. start the local platform (:class:`LocalTarget`) with kube-agents as its node agents;
4. record the namespace and the admin kubeconfig in ``Endpoints.extra`` for the experiments.

Teardown, on every path: the processes stop first (so no runtime recreates a Pod), then Nodes a
fault deleted are created again and cordoned ones uncordoned (:func:`restore_nodes`), then the
namespace is deleted and awaited.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from harness.model import Endpoints
from harness.targets._kube import CALL_TIMEOUT_S, KubeOptions, KubeTarget
from harness.targets._local import LocalTarget, LocalTopology
from harness.util.errors import ConfigError, InfraError

log = logging.getLogger(__name__)

# What the target adds to the local one; all pure API operations KWOK honours. ``scale`` is not
# offered: on this overlay nothing of the platform runs as a Deployment to scale.
CAPABILITIES = ("pod-delete", "node-drain", "node-delete")
SERVICE_ACCOUNT = "refplat-controller"
# The kube runtime reads and creates the ConfigMap that owns its Pods (refplat.kubepod); the
# overlay's Role (platform/manifests/base/runtime/controller-rbac.yaml) does not grant that yet.
TOKEN_TTL_S = 24 * 3600
NODE_SELECTOR = "type=kwok"  # the label KubeCluster (and `harness cluster up`) gives KWOK nodes
NODE_LEDGER = "kube-nodes.json"  # Nodes a fault deleted or cordoned: put back at teardown


class KwokTarget(LocalTarget):
    """The local platform with its game servers as Pods on a cluster; always tears down."""

    name = "kube"

    def __init__(
        self,
        *,
        run_id: str,
        run_dir: Path,
        topology: LocalTopology,
        kube: KubeOptions,
        detach: bool = False,
    ) -> None:
        super().__init__(run_id=run_id, run_dir=run_dir, topology=topology, detach=detach)
        self.kube = KubeTarget(run_id=run_id, run_dir=run_dir, options=kube)
        self.namespace = self.kube.namespace
        self._agent_kubeconfig: Path | None = None

    @property
    def capabilities(self) -> frozenset[str]:
        return super().capabilities | frozenset(CAPABILITIES)

    def deploy(self) -> Endpoints:
        """Apply the overlay, write the runtime's credentials, start the platform beside it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        kube = self.kube.deploy()
        with self._admin_client() as api:
            self._agent_kubeconfig = self._write_agent_kubeconfig(api)
        local = super().deploy()
        extra = {
            **local.extra,
            **{k: v for k, v in kube.extra.items() if k.startswith("kube_")},
            "kube_kubeconfig": str(self._admin_kubeconfig()),
            "kube_agent_kubeconfig": str(self._agent_kubeconfig),
            "kube_node_selector": NODE_SELECTOR,
        }
        self._endpoints = replace(local, target=self.name, extra=extra)
        return self._endpoints

    def teardown(self) -> None:
        """Stop the processes, put back Nodes a fault took away, delete the namespace."""
        try:
            super().teardown()
        finally:
            try:
                if self.kube.context:
                    with self._admin_client() as api:
                        restore_nodes(api, self.run_dir)
            except (InfraError, k8s.ApiException, OSError) as exc:
                log.warning("could not restore the nodes faults changed: %s", exc)
            finally:
                self.kube.teardown()

    # --- the runtime's identity -------------------------------------------------------------

    def _admin_kubeconfig(self) -> Path:
        given = self.kube.options.kubeconfig
        if given is not None:
            return given.resolve()
        return Path(
            os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0]
        ).expanduser()

    def _admin_client(self) -> k8s.ApiClient:
        api: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self._admin_kubeconfig()), context=self.kube.context or None
        )
        return api

    def _write_agent_kubeconfig(self, api: k8s.ApiClient) -> Path:
        """A kubeconfig of the overlay's ServiceAccount (a bound token), mode 0600, in secrets/."""
        body: Any = {"spec": {"expirationSeconds": TOKEN_TTL_S}}
        try:
            reply: Any = k8s.CoreV1Api(api).create_namespaced_service_account_token(
                SERVICE_ACCOUNT, self.namespace, body, _request_timeout=CALL_TIMEOUT_S
            )
        except k8s.ApiException as exc:
            raise InfraError(
                f"Could not get a token for ServiceAccount {self.namespace}/{SERVICE_ACCOUNT} "
                f"(the kwok overlay creates it): HTTP {exc.status}."
            ) from exc
        cluster: dict[str, Any] = {"server": str(api.configuration.host)}
        ca_file = api.configuration.ssl_ca_cert
        if ca_file:
            cluster["certificate-authority-data"] = base64.b64encode(
                Path(ca_file).read_bytes()
            ).decode()
        else:
            cluster["insecure-skip-tls-verify"] = not api.configuration.verify_ssl
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "target", "cluster": cluster}],
            "users": [{"name": SERVICE_ACCOUNT, "user": {"token": reply.status.token}}],
            "contexts": [
                {
                    "name": "runtime",
                    "context": {
                        "cluster": "target",
                        "user": SERVICE_ACCOUNT,
                        "namespace": self.namespace,
                    },
                }
            ],
            "current-context": "runtime",
        }
        secrets_dir = self.run_dir / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = secrets_dir / "kube-agent.kubeconfig"
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(config))
        return path

    # --- the node agents: kube runtimes -----------------------------------------------------

    def _start_agents(self, redis_args: list[str], data_dir: Path) -> list[str]:
        """One ``refplat kube-agent`` per platform node (role ``agent``); their ``host:port``s."""
        del data_dir  # world files live in the Pods' ephemeral storage
        if self._agent_kubeconfig is None:
            raise InfraError("The kube runtime's kubeconfig was not written before the agents.")
        addrs = []
        for i in range(1, self.topology.node_agents + 1):
            name = f"agent-{i}"
            place = self._place(name)
            port = place.port("agent")
            argv = [
                sys.executable,
                "-m",
                "refplat",
                "kube-agent",
                *redis_args,
                *("--namespace", self.namespace, "--node", name),
                *("--kubeconfig", str(self._agent_kubeconfig)),
                *("--node-selector", NODE_SELECTOR),
                *("--listen", f"{place.address}:{port}"),
            ]
            self._start(name, argv, role="agent")
            self._urls[name] = f"http://{place.address}:{port}"
            addrs.append(f"{place.address}:{port}")
        for i, addr in enumerate(addrs, start=1):
            self._await_http(f"agent-{i}", f"http://{addr}/healthz")
        return addrs


# --- Nodes a fault changed -----------------------------------------------------------------


def record_node(run_dir: Path, *, change: str, node: dict[str, Any]) -> None:
    """Note in the run's ledger that a fault ``deleted`` or ``cordoned`` ``node`` (its object)."""
    ledger = run_dir / NODE_LEDGER
    entries = json.loads(ledger.read_text()) if ledger.is_file() else []
    entries.append({"change": change, "node": node})
    ledger.write_text(json.dumps(entries))


def restore_nodes(api: k8s.ApiClient, run_dir: Path) -> list[str]:
    """Create again the Nodes a fault deleted, uncordon those it cordoned; return their names."""
    ledger = run_dir / NODE_LEDGER
    if not ledger.is_file():
        return []
    core = k8s.CoreV1Api(api)
    restored = []
    for entry in json.loads(ledger.read_text()):
        node = entry["node"]
        name = node["metadata"]["name"]
        try:
            if entry["change"] == "deleted":
                body: Any = _recreatable(node)
                core.create_node(body, _request_timeout=CALL_TIMEOUT_S)
            else:
                patch = {"spec": {"unschedulable": False}}
                core.patch_node(name, patch, _request_timeout=CALL_TIMEOUT_S)
        except k8s.ApiException as exc:
            if exc.status not in (404, 409):  # gone or there already: nothing to put back
                raise
        restored.append(name)
    ledger.unlink()
    return restored


def _recreatable(node: dict[str, Any]) -> dict[str, Any]:
    """A deleted Node's object without what the apiserver sets (uid, resourceVersion, ...)."""
    meta = node["metadata"]
    keep = {k: meta[k] for k in ("name", "labels", "annotations") if meta.get(k)}
    status = {k: v for k, v in (node.get("status") or {}).items() if k != "conditions"}
    spec = {k: v for k, v in (node.get("spec") or {}).items() if k != "unschedulable"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": keep, "spec": spec, "status": status}


def kube_problem(kubeconfig: Path | None, context: str | None) -> str:
    """Why ``--target kube`` cannot start with these flags, or "" when it can try."""
    if kubeconfig is None and context is None:
        return (
            "--target kube needs a cluster: pass --kubeconfig PATH (and --context NAME), or "
            "start a local one with `harness cluster up --kwok --nodes 3` (it writes "
            ".harness/cluster/kubeconfig, used by default when it exists)."
        )
    if kubeconfig is not None and not kubeconfig.is_file():
        return f"--kubeconfig {kubeconfig}: no such file."
    return ""


def check_kube_flags(kubeconfig: Path | None, context: str | None) -> None:
    """Raise ConfigError (exit 3) when ``--target kube`` has no cluster to use."""
    if problem := kube_problem(kubeconfig, context):
        raise ConfigError(problem)
