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
namespace is deleted and awaited. A detached run (``harness up --target kube``) is taken back by
``harness down`` through :func:`release_namespace`, from what :class:`RunNamespace` recorded.
"""

from __future__ import annotations

import base64
import json
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from urllib3.exceptions import HTTPError, MaxRetryError

from harness.model import Endpoints
from harness.targets._kube import CALL_TIMEOUT_S, Gone, KubeOptions, KubeTarget, delete_namespace
from harness.targets._kubescrape import RULES as KUBE_RULES
from harness.targets._kubescrape import control_plane_scrape_configs
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
NAMESPACE_GONE_TIMEOUT_S = 60.0
# What talking to a cluster that is gone, or refuses, raises (wrapped once, in this module).
_CLUSTER_ERRORS = (k8s.ApiException, k8s_config.ConfigException, HTTPError, OSError)


@dataclass(frozen=True)
class RunNamespace:
    """Where a kube run lives in its cluster: what ``harness down`` needs to take it back."""

    namespace: str
    kubeconfig: str  # the admin kubeconfig, absolute
    context: str  # "": the kubeconfig's current context

    def kubectl(self, *args: str) -> str:
        """A kubectl command line on this cluster, for messages."""
        where = f"--kubeconfig {self.kubeconfig}" + (
            f" --context {self.context}" if self.context else ""
        )
        return " ".join(("kubectl", where, *args))


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
        self._scrape: list[dict[str, object]] = []  # the cluster's control plane, for Prometheus

    @property
    def capabilities(self) -> frozenset[str]:
        return super().capabilities | frozenset(CAPABILITIES)

    @property
    def capability_gaps(self) -> dict[str, str]:
        """Why the in-cluster experiments (the kind overlay's) are SKIPPED on this target."""
        return {
            **super().capability_gaps,
            "controller-pod-delete": "the platform's controllers run as local processes here, "
            "not as Pods",
            "scale": "the platform's API runs as local processes here, not as a Deployment",
            "network-policy": "nothing enforces NetworkPolicies on KWOK nodes (no network "
            "plugin; Pods get fake addresses)",
        }

    def _extra_scrape_configs(self) -> list[dict[str, object]]:
        return self._scrape

    def _extra_rule_files(self) -> list[str]:
        return [str(KUBE_RULES)]

    def deploy(self) -> Endpoints:
        """Apply the overlay, write the runtime's credentials, start the platform beside it."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.kube.admin_client() as api:  # before anything is applied
            self._check_kwok_nodes(api)
        kube = self.kube.deploy()
        with self.kube.admin_client() as api:
            self._agent_kubeconfig = self._write_agent_kubeconfig(api)
            self._scrape = control_plane_scrape_configs(api, self.run_dir / "secrets")
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

    @property
    def run_namespace(self) -> RunNamespace:
        """The run's namespace and admin coordinates (the context once deploy has connected)."""
        return RunNamespace(
            namespace=self.namespace,
            kubeconfig=str(self._admin_kubeconfig()),
            context=self.kube.context or self.kube.options.context or "",
        )

    def teardown(self) -> None:
        """Stop the processes, put back Nodes a fault took away, delete the namespace."""
        try:
            super().teardown()
        finally:
            release_cluster(self.kube, self.run_dir)

    # --- the runtime's identity -------------------------------------------------------------

    def _admin_kubeconfig(self) -> Path:
        return self.kube.options.admin_kubeconfig()

    def _check_kwok_nodes(self, api: k8s.ApiClient) -> None:
        """Refuse a cluster without KWOK nodes: the runtime puts game servers only there."""
        try:
            nodes: Any = k8s.CoreV1Api(api).list_node(
                label_selector=NODE_SELECTOR, limit=1, _request_timeout=CALL_TIMEOUT_S
            )
        except _CLUSTER_ERRORS as exc:
            raise InfraError(f"listing the cluster's nodes failed: {exc}") from exc
        if not nodes.items:
            context = self.kube.options.context or "(the current one)"
            raise ConfigError(
                f"Context {context} has no KWOK nodes (label {NODE_SELECTOR}): the "
                "kwok overlay runs the platform on this host and its game servers as Pods on "
                "those nodes only. To put the whole platform inside this cluster, pass "
                '--overlay kind --image REF (docs/operations.md, "In an existing cluster"); '
                "for a local cluster with KWOK nodes, `harness cluster up --kwok`."
            )

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


def release_cluster(kube: KubeTarget, run_dir: Path) -> None:
    """The cluster side of a target's teardown: once ``kube`` has connected, put back the Nodes
    a fault changed (:func:`restore_nodes`; a failure is a warning), then delete the run's
    namespace (:meth:`KubeTarget.teardown`) on every path."""
    try:
        if kube.context:  # connected: a fault may have changed Nodes
            with kube.admin_client() as api:
                restore_nodes(api, run_dir)
    except (InfraError, k8s.ApiException, k8s_config.ConfigException, OSError) as exc:
        log.warning("could not restore the nodes faults changed: %s", exc)
    finally:
        kube.teardown()


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


def release_namespace(
    run_dir: Path, where: RunNamespace, *, timeout_s: float = NAMESPACE_GONE_TIMEOUT_S
) -> tuple[list[str], list[str]]:
    """Take back what a detached run left in its cluster, once its processes are stopped: the
    Nodes faults changed (:func:`restore_nodes`), then the namespace, deleted and awaited.

    Never raises for a cluster that is gone or refuses: returns (what was done, warnings), a
    warning being a sentence that names what is left and the command to remove it by hand.
    """
    done: list[str] = []
    warnings: list[str] = []
    by_hand = f"delete it with `{where.kubectl('delete namespace', where.namespace)}`"
    try:
        api: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=where.kubeconfig, context=where.context or None
        )
    except _CLUSTER_ERRORS as exc:
        return done, [f"namespace {where.namespace} is left ({_short(exc)}); {by_hand}"]
    try:
        try:
            done += [f"node {name} put back" for name in restore_nodes(api, run_dir)]
        except _CLUSTER_ERRORS as exc:
            warnings.append(
                f"the Nodes faults changed ({run_dir / NODE_LEDGER}) were not put back "
                f"({_short(exc)}); uncordon or recreate them with kubectl"
            )
        try:
            gone = delete_namespace(k8s.CoreV1Api(api), where.namespace, timeout_s=timeout_s)
        except _CLUSTER_ERRORS as exc:
            warnings.append(f"namespace {where.namespace} is left ({_short(exc)}); {by_hand}")
        else:
            if gone is Gone.ALREADY:
                warnings.append(f"namespace {where.namespace} was already gone")
            elif gone is Gone.BY_OTHERS:
                warnings.append(
                    f"namespace {where.namespace} was already being deleted (not by this run); "
                    "it is gone now"
                )
            elif gone is Gone.NOT_YET:
                get = where.kubectl("get namespace", where.namespace)
                warnings.append(
                    f"namespace {where.namespace} is still terminating after {timeout_s:g} s; "
                    f"it goes on its own (`{get}`)"
                )
            else:
                done.append(f"namespace {where.namespace} deleted")
    finally:
        api.close()  # type: ignore[no-untyped-call]
    return done, warnings


def _short(exc: BaseException) -> str:
    """An API error as its HTTP status; anything else as its first line."""
    if isinstance(exc, k8s.ApiException):
        return f"HTTP {exc.status}"
    if isinstance(exc, MaxRetryError):
        return f"the cluster does not answer: {exc.reason}"
    return (str(exc).splitlines() or [type(exc).__name__])[0]


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
