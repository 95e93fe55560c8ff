"""The ``kube`` target: refplat's manifests applied to an existing cluster, one namespace per run.

The deploy pipeline, each step waiting for what the next one needs:

1. connect: load the kubeconfig and the chosen context (default: its current context);
2. guard: refuse a context that is not a test cluster (below) unless ``allow_context`` names it;
3. render: copy ``platform/manifests`` into the run directory, write the deploy-time secret
   files an overlay's ``secretGenerator`` reads, and run ``kubectl kustomize`` on the overlay;
4. relocate: move every namespaced object into the run's namespace ``gsh-<run id>`` (the
   overlay's Namespace is renamed, keeping its Pod Security labels; RoleBinding subjects follow),
   and label everything with the run id; with ``node_ports``, make the named Services
   ``NodePort`` Services on fixed ports (the kind target reaches the platform through them);
5. apply: server-side apply through the ``kubernetes`` dynamic client (a PATCH with
   ``application/apply-patch+yaml`` and ``fieldManager=gsharness``), the Namespace first;
6. roll out: wait until every Deployment and StatefulSet has all its replicas updated and ready
   (on KWOK nodes the pods become Running and Ready without containers), logging progress;
7. record: ``Endpoints`` with the in-cluster URLs of the Services and one entry per pod.

Teardown deletes the run's namespace on every path (Ctrl-C included, via ``__exit__``) and waits
until it is gone. Namespaces carry the label ``gsharness.io/run-id``, so what a killed run left
is found with ``kubectl get ns -l gsharness.io/run-id``.

Test clusters: the target deploys and deletes namespaces, so it works only on a cluster that says
it is a throwaway: one with the ConfigMap ``gsharness-test-cluster`` in ``kube-system``
(``kubectl create configmap gsharness-test-cluster -n kube-system``; the kind target creates it
in the clusters it makes). A marker inside the cluster, not a context name, because a context
name is local to one kubeconfig and says nothing about which cluster it points at. Any other
context is refused unless the user names it with ``--allow-context NAME``.
"""

from __future__ import annotations

import enum
import logging
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from harness.model import Endpoints, ProcessInfo
from harness.targets._configs import audit_key_file_text
from harness.targets._kubecluster import kube_bin_dir
from harness.targets._kubeobjects import (
    KIND_CRD,
    apply_rank,
    crd_established,
    namespace_for,
    relocate,
    replicas,
    service_url,
)
from harness.util.errors import ConfigError, InfraError

log = logging.getLogger(__name__)

TEST_CLUSTER_MARKER = "gsharness-test-cluster"  # a ConfigMap in kube-system
MARKER_NAMESPACE = "kube-system"
FIELD_MANAGER = "gsharness"
# Names as in harness.model.CAPABILITIES. The platform runs in the cluster (the kind overlay):
# its controller's leader Pod can be deleted and its API scaled; ``network-policy`` promises a
# network plugin that enforces NetworkPolicies (kind's kindnet does since kind 0.24): on a
# cluster whose plugin does not, k8s-network-policy-deny FAILs, which is what it should say.
CAPABILITIES = (
    "controller-pod-delete",
    "network-policy",
    "node-delete",
    "node-drain",
    "pod-delete",
    "scale",
)
CALL_TIMEOUT_S = 10.0
POLL_S = 0.5
PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class KubeOptions:
    """Where and what the kube target deploys."""

    manifests_dir: Path
    kubectl: Path
    overlay: str = "kwok"
    kubeconfig: Path | None = None  # None: $KUBECONFIG or ~/.kube/config, as kubectl reads it
    context: str | None = None  # None: the kubeconfig's current context
    allow_context: str | None = None
    install_crds: bool = False  # apply manifests/crds first (cluster-wide; kept at teardown)
    rollout_timeout_s: float = 120.0
    teardown_timeout_s: float = 60.0
    # (Service, nodePort): exposed on every node at that port (see :func:`with_node_ports`).
    node_ports: tuple[tuple[str, int], ...] = ()
    # The refplat image the cluster pulls, in place of the overlay's (see :func:`with_image`).
    image: str | None = None

    def admin_kubeconfig(self) -> Path:
        """The kubeconfig file in use, absolute (see :func:`resolve_kubeconfig`)."""
        return resolve_kubeconfig(self.kubeconfig)


def resolve_kubeconfig(given: Path | None) -> Path:
    """The kubeconfig file in use, absolute: the one given, else the first of $KUBECONFIG, else
    ~/.kube/config (what the activities load, with the run's context, later)."""
    if given is not None:
        return given.resolve()
    first = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or "~/.kube/config"
    return Path(first).expanduser().resolve()


@dataclass
class _Rollout:
    kind: str
    name: str
    want: int
    ready: int = 0
    updated: int = 0
    current: bool = False

    @property
    def done(self) -> bool:
        return self.current and self.ready >= self.want and self.updated >= self.want

    def __str__(self) -> str:
        return f"{self.kind.lower()}/{self.name} {self.ready}/{self.want}"


@dataclass
class _State:
    api: k8s.ApiClient | None = None
    context: str = ""
    server: str = ""
    created_namespace: bool = False
    objects: list[dict[str, Any]] = field(default_factory=list)


def find_kubectl(repo_root: Path) -> Path:
    """The pinned kubectl of scripts/kube-build.sh when built, else the one on PATH."""
    bin_dir = kube_bin_dir(repo_root)
    if bin_dir is not None:
        return bin_dir / "kubectl"
    found = shutil.which("kubectl")
    if found is None:
        raise InfraError(
            "The kube and kind targets need kubectl (for `kubectl kustomize`); run "
            "scripts/kube-build.sh or install kubectl v1.33."
        )
    return Path(found)


class KubeTarget:
    """Deploys an overlay of refplat's manifests into a fresh namespace; always tears it down."""

    name = "kube"
    capabilities = frozenset(CAPABILITIES)

    def __init__(
        self,
        *,
        run_id: str,
        run_dir: Path,
        options: KubeOptions,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        self.options = options
        self.namespace = namespace_for(run_id)
        self.progress = progress or log.info
        self._state = _State()
        self._endpoints: Endpoints | None = None

    def __enter__(self) -> KubeTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise InfraError("The kube target has not been deployed yet.")
        return self._endpoints

    @property
    def context(self) -> str:
        """The kubeconfig context in use (known once deploy() has connected)."""
        return self._state.context

    def admin_client(self) -> k8s.ApiClient:
        """A new client of the cluster with the admin kubeconfig, in the context in use (before
        deploy() has connected: the one given, else the kubeconfig's current one); the caller
        closes it."""
        api: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.options.admin_kubeconfig()),
            context=self.context or self.options.context or None,
        )
        return api

    def deploy(self) -> Endpoints:
        """Connect, check the cluster is a test cluster, render, apply, wait for the rollouts."""
        api = self._connect()
        self._guard(api)
        objects = relocate(self._render(), namespace=self.namespace, run_id=self.run_id)
        objects = with_node_ports(objects, dict(self.options.node_ports))
        if self.options.image:
            objects = with_image(objects, self.options.image)
        self._state.objects = objects
        dynamic = DynamicClient(api, cache_file=str(self.run_dir / "kube-discovery.json"))  # type: ignore[no-untyped-call]
        if self.options.install_crds:
            self._apply(dynamic, self._missing(dynamic, self._crds()))
        self._state.created_namespace = True  # from here on, teardown deletes the namespace
        self._apply(dynamic, objects)
        self._await_rollouts(api, objects)
        self._endpoints = self._record(api, objects)
        return self._endpoints

    def teardown(self) -> None:
        """Delete the run's namespace (and wait until it is gone); close the API client."""
        api, self._state.api = self._state.api, None
        if api is None:
            return
        try:
            if self._state.created_namespace:
                self._delete_namespace(api)
        finally:
            api.close()  # type: ignore[no-untyped-call]

    # --- pipeline steps ---------------------------------------------------------------------

    def _connect(self) -> k8s.ApiClient:
        opts = self.options
        config_file = str(opts.kubeconfig) if opts.kubeconfig else None
        where = config_file or os.environ.get("KUBECONFIG") or "~/.kube/config"
        try:
            contexts, current = k8s_config.list_kube_config_contexts(config_file=config_file)  # type: ignore[no-untyped-call]
        except (k8s_config.ConfigException, OSError) as exc:
            raise ConfigError(f"{where}: not a usable kubeconfig: {exc}.") from exc
        names = [c["name"] for c in contexts]
        context = opts.context or (current or {}).get("name", "")
        if context not in names:
            raise ConfigError(
                f"{where}: no context {context!r} (contexts: {', '.join(names) or 'none'}); "
                "pass one of them with --context."
            )
        api: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=config_file, context=context
        )
        self._state.api = api
        self._state.context = context
        self._state.server = str(api.configuration.host)
        return api

    def _guard(self, api: k8s.ApiClient) -> None:
        """Refuse a cluster without the test-cluster marker unless the user named the context."""
        context, allowed = self._state.context, self.options.allow_context
        if allowed is not None and allowed != context:
            raise ConfigError(
                f"--allow-context {allowed} does not name the context in use ({context}); "
                f"pass --allow-context {context} to deploy there."
            )
        if allowed == context:
            log.warning("context %s allowed explicitly (--allow-context)", context)
            return
        try:
            k8s.CoreV1Api(api).read_namespaced_config_map(
                TEST_CLUSTER_MARKER, MARKER_NAMESPACE, _request_timeout=CALL_TIMEOUT_S
            )
            return
        except k8s.ApiException as exc:
            found = "none there" if exc.status == 404 else f"could not read it: HTTP {exc.status}"
        raise ConfigError(
            f"Context {context!r} (cluster {self._state.server}) is not labelled as a test "
            f"cluster: no ConfigMap {TEST_CLUSTER_MARKER} in {MARKER_NAMESPACE} ({found}). The "
            "kube target creates and deletes namespaces; label a throwaway cluster with "
            f"`kubectl --context {context} create configmap {TEST_CLUSTER_MARKER} "
            f"-n {MARKER_NAMESPACE}`, or name this context explicitly with "
            f"--allow-context {context}."
        )

    def _render(self) -> list[dict[str, Any]]:
        overlay = self.options.overlay
        source = self.options.manifests_dir
        if not (source / "overlays" / overlay / "kustomization.yaml").is_file():
            known = sorted(p.name for p in (source / "overlays").iterdir() if p.is_dir())
            raise ConfigError(
                f"{source / 'overlays'}: no overlay {overlay!r} (overlays: {', '.join(known)})."
            )
        staged = self.run_dir / "manifests"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(source, staged)
        self._write_secrets(staged / "overlays" / overlay / "secrets")
        out = subprocess.run(
            [str(self.options.kubectl), "kustomize", str(staged / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if out.returncode != 0:
            raise ConfigError(
                f"{source / 'overlays' / overlay}: `kubectl kustomize` failed: {out.stderr.strip()}"
            )
        return [doc for doc in yaml.safe_load_all(out.stdout) if doc]

    def _write_secrets(self, directory: Path) -> None:
        """The run's admin token and audit key, for Endpoints and an overlay's secretGenerator."""
        own = self.run_dir / "secrets"
        own.mkdir(parents=True, exist_ok=True, mode=0o700)
        values = {
            "admin-token": secrets.token_urlsafe(32) + "\n",
            "audit-keys": audit_key_file_text(),
        }
        for name, value in values.items():
            (own / name).write_text(value)
            (own / name).chmod(0o600)
            if directory.is_dir():
                (directory / name).write_text(value)

    def _crds(self) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = []
        for path in sorted((self.options.manifests_dir / "crds").glob("*.yaml")):
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
        return docs

    def _missing(self, dynamic: DynamicClient, crds: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The CRDs the cluster does not have yet. One it has is left as it is: on a real
        cluster it is likely the Prometheus Operator's, which a forced apply of this minimal
        schema would take over."""
        resource = dynamic.resources.get(
            api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition"
        )
        missing = []
        for crd in crds:
            name = crd["metadata"]["name"]
            try:
                resource.get(name=name, _request_timeout=CALL_TIMEOUT_S)
            except k8s.ApiException as exc:
                if exc.status != 404:
                    raise InfraError(f"Reading CRD {name} failed: {_reason(exc)}.") from exc
                missing.append(crd)
            else:
                self.progress(f"CRD {name} is in the cluster already; left as it is")
        return missing

    def _apply(self, dynamic: DynamicClient, objects: list[dict[str, Any]]) -> None:
        started = time.monotonic()
        for obj in sorted(objects, key=apply_rank):
            kind, name = obj["kind"], obj["metadata"]["name"]
            try:
                resource = dynamic.resources.get(api_version=obj["apiVersion"], kind=kind)
                dynamic.server_side_apply(  # type: ignore[no-untyped-call]
                    resource,
                    body=obj,
                    namespace=obj["metadata"].get("namespace"),
                    field_manager=FIELD_MANAGER,
                    force_conflicts=True,
                    _request_timeout=CALL_TIMEOUT_S,
                )
            except ResourceNotFoundError as exc:
                raise InfraError(
                    f"The cluster of context {self.context!r} has no API for {kind} "
                    f"({obj['apiVersion']}); install its CRD first (platform/manifests/crds)."
                ) from exc
            except k8s.ApiException as exc:
                raise InfraError(
                    f"Applying {kind}/{name} to context {self.context!r} failed: {_reason(exc)}."
                ) from exc
            if kind == "CustomResourceDefinition":
                self._await_established(dynamic, name)
        self.progress(
            f"applied {len(objects)} object(s) for namespace {self.namespace} "
            f"in {time.monotonic() - started:.1f} s"
        )

    def _await_established(self, dynamic: DynamicClient, name: str) -> None:
        crds = dynamic.resources.get(api_version="apiextensions.k8s.io/v1", kind=KIND_CRD)
        deadline = time.monotonic() + self.options.rollout_timeout_s
        while time.monotonic() < deadline:
            crd = dynamic.get(crds, name=name, _request_timeout=CALL_TIMEOUT_S).to_dict()  # type: ignore[no-untyped-call]
            if crd_established(crd):
                dynamic.resources.invalidate_cache()  # its kinds exist from now on
                return
            time.sleep(POLL_S)
        raise InfraError(f"CRD {name} was not Established within the rollout timeout.")

    def _await_rollouts(self, api: k8s.ApiClient, objects: list[dict[str, Any]]) -> None:
        rollouts = [
            _Rollout(kind=o["kind"], name=o["metadata"]["name"], want=replicas(o))
            for o in objects
            if o["kind"] in ("Deployment", "StatefulSet")
        ]
        apps = k8s.AppsV1Api(api)
        started = time.monotonic()
        deadline, report_at = started + self.options.rollout_timeout_s, started
        while True:
            for r in rollouts:
                _observe(apps, self.namespace, r)
            pending = [r for r in rollouts if not r.done]
            if not pending:
                break
            now = time.monotonic()
            if now > deadline:
                raise InfraError(
                    f"Rollouts in namespace {self.namespace} (context {self.context!r}) did not "
                    f"finish within {self.options.rollout_timeout_s:g} s: "
                    f"{', '.join(map(str, pending))}.{pod_problems(api, self.namespace)} See "
                    f"`kubectl -n {self.namespace} get events`."
                )
            if now >= report_at:
                self.progress("waiting for rollouts: " + ", ".join(map(str, pending)))
                report_at = now + PROGRESS_EVERY_S
            time.sleep(POLL_S)
        self.progress(
            f"{len(rollouts)} rollouts complete in {time.monotonic() - started:.1f} s "
            f"(namespace {self.namespace})"
        )

    def _record(self, api: k8s.ApiClient, objects: list[dict[str, Any]]) -> Endpoints:
        services = {
            o["metadata"]["name"]: service_url(o, self.namespace)
            for o in objects
            if o["kind"] == "Service"
        }
        pods: Any = k8s.CoreV1Api(api).list_namespaced_pod(
            self.namespace, _request_timeout=CALL_TIMEOUT_S
        )
        processes = tuple(
            ProcessInfo(
                name=p.metadata.name,
                role=(p.metadata.labels or {}).get("app.kubernetes.io/component", ""),
                pid=0,
                host=p.spec.node_name or "",
            )
            for p in pods.items
        )
        return Endpoints(
            run_id=self.run_id,
            target=self.name,
            run_dir=str(self.run_dir),
            api_url=services.get("refplat-api", ""),
            admin_token_file=str(self.run_dir / "secrets" / "admin-token"),
            redis_url=f"{services['refplat-redis']}/0" if "refplat-redis" in services else "",
            prometheus_url=services.get("prometheus", ""),
            timeline_file=str(self.run_dir / "timeline.jsonl"),
            capabilities=tuple(sorted(self.capabilities)),
            processes=processes,
            extra={
                "kube_namespace": self.namespace,
                "kube_context": self.context,
                "kube_server": self._state.server,
                "kube_kubeconfig": str(self.options.admin_kubeconfig()),
                "kube_overlay": self.options.overlay,
                **{f"service:{name}": url for name, url in services.items()},
            },
        )

    def _delete_namespace(self, api: k8s.ApiClient) -> None:
        timeout_s = self.options.teardown_timeout_s
        try:
            gone = delete_namespace(k8s.CoreV1Api(api), self.namespace, timeout_s=timeout_s)
        except k8s.ApiException as exc:
            raise InfraError(
                f"Could not delete namespace {self.namespace} (context {self.context!r}): "
                f"HTTP {exc.status}; delete it with `kubectl delete ns {self.namespace}`."
            ) from exc
        if gone is Gone.NOT_YET:
            log.warning(
                "namespace %s is still terminating after %g s; it goes away on its own",
                self.namespace,
                timeout_s,
            )
        elif gone is not Gone.ALREADY:
            self.progress(f"namespace {self.namespace} deleted")


def with_node_ports(objects: list[dict[str, Any]], ports: dict[str, int]) -> list[dict[str, Any]]:
    """``objects`` with each Service named in ``ports`` of type NodePort, its first port on the
    given nodePort (a nodePort is unique in a cluster: one such deploy per cluster at a time).

    Raise ConfigError when a named Service is not among ``objects``.
    """
    services = {o["metadata"]["name"] for o in objects if o["kind"] == "Service"}
    if missing := sorted(set(ports) - services):
        raise ConfigError(
            f"No Service {', '.join(missing)} in the overlay to expose on a node port "
            f"(Services: {', '.join(sorted(services)) or 'none'})."
        )
    return [_node_port(o, ports.get(o["metadata"]["name"])) for o in objects]


def pod_problems(api: k8s.ApiClient, namespace: str, most: int = 6) -> str:
    """Why Pods of ``namespace`` are not ready, one line each (a container waiting, with its
    reason, or the Pod unschedulable), for an error message; "" when none says."""
    try:
        pods: Any = k8s.CoreV1Api(api).list_namespaced_pod(
            namespace, _request_timeout=CALL_TIMEOUT_S
        )
    except (k8s.ApiException, OSError):
        return ""
    lines: list[str] = []
    for pod in pods.items:
        status = pod.status
        reasons = [
            f"{c.name} {c.state.waiting.reason}: {c.state.waiting.message or ''}".rstrip(": ")
            for c in [*(status.init_container_statuses or []), *(status.container_statuses or [])]
            if c.state is not None and c.state.waiting is not None and c.state.waiting.reason
        ]
        reasons += [
            f"{c.reason}: {c.message}"
            for c in status.conditions or []
            if c.type == "PodScheduled" and c.status == "False"
        ]
        if reasons:
            lines.append(f"\n  pod/{pod.metadata.name}: {'; '.join(reasons)}")
    hint = ""
    if any("ImagePull" in line or "ErrImage" in line for line in lines):
        hint = (
            "\n  The cluster cannot pull an image: push the refplat image built from "
            "platform/Containerfile to a registry it reaches and pass it with --image."
        )
    return "".join(lines[:most]) + hint


OVERLAY_IMAGE = "refplat:dev"  # what the kind overlay runs: built here, `kind load`ed there
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")


def with_image(objects: list[dict[str, Any]], image: str) -> list[dict[str, Any]]:
    """``objects`` with every container running :data:`OVERLAY_IMAGE` running ``image`` instead,
    and every ``--image=`` argument naming it (the kube runtime's image for game servers) naming
    ``image``: so a cluster that cannot have the locally built image pulls one from a registry.

    Raise ConfigError when no container ran :data:`OVERLAY_IMAGE` (the flag would do nothing).
    """
    changed = 0

    def container(c: dict[str, Any]) -> dict[str, Any]:
        nonlocal changed
        out = dict(c)
        if c.get("image") == OVERLAY_IMAGE:
            out["image"] = image
            changed += 1
        if "args" in c:
            out["args"] = [
                f"--image={image}" if a == f"--image={OVERLAY_IMAGE}" else a for a in c["args"]
            ]
        return out

    result = []
    for original in objects:
        obj = original
        if obj.get("kind") in WORKLOADS:
            pod = obj["spec"]["template"]["spec"]
            pod = {
                **pod,
                **{
                    key: [container(c) for c in pod[key]]
                    for key in ("containers", "initContainers")
                    if key in pod
                },
            }
            template = {**obj["spec"]["template"], "spec": pod}
            obj = {**obj, "spec": {**obj["spec"], "template": template}}
        result.append(obj)
    if not changed:
        raise ConfigError(
            f"--image {image}: no container of the overlay runs {OVERLAY_IMAGE}, so there is "
            "nothing to replace; --image goes with the in-cluster overlay (kind)."
        )
    return result


def _node_port(obj: dict[str, Any], port: int | None) -> dict[str, Any]:
    if port is None or obj["kind"] != "Service":
        return obj
    first, *rest = obj["spec"]["ports"]
    ports = [{**first, "nodePort": port}, *rest]
    return {**obj, "spec": {**obj["spec"], "type": "NodePort", "ports": ports}}


class Gone(enum.Enum):
    """How a namespace went (:func:`delete_namespace`)."""

    DELETED = "deleted"
    ALREADY = "gone already"
    BY_OTHERS = "deleted by someone else"
    NOT_YET = "still terminating"


def delete_namespace(core: k8s.CoreV1Api, namespace: str, *, timeout_s: float) -> Gone:
    """Delete ``namespace`` (unless someone already is) and wait at most ``timeout_s`` until it
    is gone."""
    found = _read_namespace(core, namespace)
    if found is None:
        return Gone.ALREADY
    by_others = found.metadata.deletion_timestamp is not None
    if not by_others:
        try:
            core.delete_namespace(namespace, _request_timeout=CALL_TIMEOUT_S)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return Gone.ALREADY
            raise
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _read_namespace(core, namespace) is None:
            return Gone.BY_OTHERS if by_others else Gone.DELETED
        time.sleep(POLL_S)
    return Gone.NOT_YET


def _read_namespace(core: k8s.CoreV1Api, namespace: str) -> Any:
    """The namespace (a V1Namespace), or None when there is none."""
    try:
        return core.read_namespace(namespace, _request_timeout=CALL_TIMEOUT_S)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _observe(apps: k8s.AppsV1Api, namespace: str, rollout: _Rollout) -> None:
    """Read one workload's status (``kubectl rollout status`` semantics)."""
    if rollout.kind == "Deployment":
        obj: Any = apps.read_namespaced_deployment_status(
            rollout.name, namespace, _request_timeout=CALL_TIMEOUT_S
        )
        status = obj.status
        rollout.ready = status.available_replicas or 0
        rollout.updated = status.updated_replicas or 0
        rollout.current = (status.observed_generation or 0) >= obj.metadata.generation
        return
    obj = apps.read_namespaced_stateful_set_status(
        rollout.name, namespace, _request_timeout=CALL_TIMEOUT_S
    )
    status = obj.status
    rollout.ready = status.ready_replicas or 0
    rollout.updated = status.updated_replicas or 0
    rollout.current = (
        status.observed_generation or 0
    ) >= obj.metadata.generation and status.current_revision == status.update_revision


def _reason(exc: k8s.ApiException) -> str:
    """The apiserver's message from an error's Status body, else the HTTP status."""
    try:
        message = yaml.safe_load(exc.body or "{}").get("message", "")
    except (yaml.YAMLError, AttributeError):
        message = ""
    return str(message or f"HTTP {exc.status}")
