"""Actions and probes on the platform's own workloads in the cluster (the ``kind`` overlay, where
the API, the controller and Redis run as Deployments and StatefulSets of the run's namespace).

The controller leader: the base manifests run the controller with
``--kube-lease=$(POD_NAMESPACE)/refplat-controller --id=$(POD_NAME)``, so the leader is the
``holderIdentity`` of that ``coordination.k8s.io`` Lease, a Pod name, read through the API alone
(no port-forward to a Pod's ``/status``, no access to Redis). The Lease is found from the
Deployment's own ``--kube-lease`` argument, so a renamed Lease is followed.

The API's scale: through the Deployment's scale subresource, as ``kubectl scale`` does. The base
has a HorizontalPodAutoscaler on ``refplat-api`` (minReplicas 3): left alone, it puts the
replicas back to its minimum within its sync period (15 s), which would end the fault early and
at an instant nobody chose. So the action lowers every HPA's minReplicas on the Deployment to
the new count too, and :func:`restore_deployment` puts both back. What each action changed is
kept in the run directory (``kube-workloads.json``) for its probe and rollback.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from kubernetes import client as k8s

from harness.chaos._target import ActivityFailed, check_within
from harness.chaos.kube import _cluster
from harness.chaos.kube._cluster import CALL_TIMEOUT_S, KubeRun

__all__ = [
    "controller_leader_replaced",
    "delete_controller_leader_pod",
    "deployment_available",
    "restore_deployment",
    "scale_deployment",
]

log = logging.getLogger(__name__)

POLL_S = 0.25
MAX_WAIT_S = 600.0
CONTROLLER = "refplat-controller"
LEASE_FLAG = "--kube-lease"
STATE_FILE = "kube-workloads.json"


# --- the controller leader -------------------------------------------------------------------


def delete_controller_leader_pod(
    target_file: str = "", fault_name: str = "k8s-controller-leader-pod-delete"
) -> dict[str, Any]:
    """Delete the Pod of the controller that holds the leader Lease, at once (grace 0);
    return its name, uid and the Lease's transitions when it was deleted."""
    run = _cluster.load(target_file)
    with run.client() as api:
        core = k8s.CoreV1Api(api)
        lease_ns, lease_name = leader_lease(run, k8s.AppsV1Api(api))
        lease: Any = k8s.CoordinationV1Api(api).read_namespaced_lease(
            lease_name, lease_ns, _request_timeout=CALL_TIMEOUT_S
        )
        holder = lease.spec.holder_identity or ""
        pod = _live_pod(core, run.namespace, holder)
        if pod is None:
            raise ActivityFailed(
                f"Lease {lease_ns}/{lease_name} names {holder or 'no holder'}, not a live Pod of "
                f"namespace {run.namespace}; the controller has no leader to take away (see "
                f"`kubectl -n {run.namespace} get lease,pods`)."
            )
        facts = {
            "holder": holder,
            "uid": pod.metadata.uid,
            "transitions": lease.spec.lease_transitions or 0,
        }
        _cluster.remember(run, STATE_FILE, fault_name, facts)
        _cluster.record(
            run,
            fault_name,
            "injected",
            target=f"pod/{holder}",
            detail=f"deleted the controller leader's Pod (grace 0); Lease {lease_name}, "
            f"{facts['transitions']} transitions",
        )
        core.delete_namespaced_pod(
            holder,
            run.namespace,
            body=k8s.V1DeleteOptions(grace_period_seconds=0),
            _request_timeout=CALL_TIMEOUT_S,
        )
    log.info("deleted the controller leader's pod %s", holder)
    return {"pod": holder, **facts}


def controller_leader_replaced(
    target_file: str = "",
    within_s: float = 30.0,
    fault_name: str = "k8s-controller-leader-pod-delete",
) -> bool:
    """True when, within ``within_s``, the leader Lease names a live, Ready Pod of the run and
    the controller Deployment has all its replicas available; after ``fault_name`` the holder
    must also differ from the deleted one, whose Pod must be gone. That instant is recorded on
    the timeline as ``recovered``."""
    check_within("within_s", within_s, MAX_WAIT_S)
    run = _cluster.load(target_file)
    pending = _cluster.pending(run, fault_name)
    taken = _cluster.recalled(run, STATE_FILE, fault_name) if pending else {}
    deadline = time.monotonic() + within_s
    with run.client() as api:
        lease_ns, lease_name = leader_lease(run, k8s.AppsV1Api(api))
        while True:
            holder, wrong = _leader_problems(api, run, (lease_ns, lease_name), taken)
            if not wrong:
                break
            if time.monotonic() >= deadline:
                log.warning("controller leader not replaced after %g s: %s", within_s, wrong)
                return False
            time.sleep(POLL_S)
    if taken:
        _cluster.record(
            run,
            fault_name,
            "recovered",
            target=f"pod/{holder}",
            detail=f"Lease {lease_name} moved from {taken['holder']} to {holder} "
            f"{time.time() - taken['at']:.2f} s after the deletion; {CONTROLLER} available",
        )
    return True


def leader_lease(run: KubeRun, apps: k8s.AppsV1Api) -> tuple[str, str]:
    """The Lease (namespace, name) the controller Deployment elects its leader on."""
    deployment: Any = apps.read_namespaced_deployment(
        CONTROLLER, run.namespace, _request_timeout=CALL_TIMEOUT_S
    )
    for container in deployment.spec.template.spec.containers:
        value = _flag_value(list(container.args or []), LEASE_FLAG)
        if value is None:
            continue
        resolved = _expand(value, container.env or [], run.namespace)
        namespace, _, name = resolved.partition("/")
        if namespace and name and "$(" not in resolved:
            return namespace, name
        raise ActivityFailed(
            f"Deployment {CONTROLLER} (namespace {run.namespace}) passes {LEASE_FLAG} {value}, "
            "which is not NAMESPACE/NAME; fix its args in platform/manifests/base/controller.yaml."
        )
    raise ActivityFailed(
        f"Deployment {CONTROLLER} (namespace {run.namespace}) elects its leader in Redis (no "
        f"{LEASE_FLAG} argument), which the harness cannot read through the Kubernetes API; "
        f"deploy manifests whose controller passes {LEASE_FLAG}=$(POD_NAMESPACE)/{CONTROLLER} "
        "(platform/manifests/base/controller.yaml)."
    )


def _flag_value(args: list[str], flag: str) -> str | None:
    for index, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and index + 1 < len(args):
            return args[index + 1]
    return None


def _expand(value: str, env: list[Any], namespace: str) -> str:
    """``$(VAR)`` of the container's env that is the Pod's namespace (the downward API), or a
    literal value, substituted as the kubelet does; other references are left as they are."""
    known: dict[str, str] = {}
    for var in env:
        field = var.value_from.field_ref if var.value_from and var.value_from.field_ref else None
        if field is not None and field.field_path == "metadata.namespace":
            known[var.name] = namespace
        elif var.value is not None:
            known[var.name] = var.value
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: known.get(m[1], m[0]), value)


def _leader_problems(
    api: Any, run: KubeRun, lease_at: tuple[str, str], taken: dict[str, Any]
) -> tuple[str, str]:
    """The Lease's holder and what is still wrong ("" when the leader is back)."""
    core = k8s.CoreV1Api(api)
    lease: Any = k8s.CoordinationV1Api(api).read_namespaced_lease(
        lease_at[1], lease_at[0], _request_timeout=CALL_TIMEOUT_S
    )
    holder = lease.spec.holder_identity or ""
    if taken and holder == taken["holder"]:
        return holder, f"the Lease still names the deleted Pod {holder}"
    if taken and _pod_uid(core, run.namespace, taken["holder"]) == taken["uid"]:
        return holder, f"the deleted Pod {taken['holder']} is still there"
    pod = _live_pod(core, run.namespace, holder)
    if pod is None or not _ready(pod):
        return holder, f"the Lease names {holder or 'nobody'}, not a Ready Pod"
    if why := _unavailable(k8s.AppsV1Api(api), run.namespace, CONTROLLER, 0):
        return holder, why
    return holder, ""


def _live_pod(core: k8s.CoreV1Api, namespace: str, name: str) -> Any:
    """The Pod ``name`` unless it is absent or being deleted (None then)."""
    if not name:
        return None
    try:
        pod: Any = core.read_namespaced_pod(name, namespace, _request_timeout=CALL_TIMEOUT_S)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return None if pod.metadata.deletion_timestamp is not None else pod


def _pod_uid(core: k8s.CoreV1Api, namespace: str, name: str) -> str:
    try:
        pod: Any = core.read_namespaced_pod(name, namespace, _request_timeout=CALL_TIMEOUT_S)
    except k8s.ApiException as exc:
        if exc.status == 404:
            return ""
        raise
    return str(pod.metadata.uid)


def _ready(pod: Any) -> bool:
    status = pod.status
    if status is None or status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])


# --- the API's scale -------------------------------------------------------------------------


def scale_deployment(
    target_file: str = "",
    name: str = "refplat-api",
    replicas: int = 1,
    within_s: float = 60.0,
    fault_name: str = "k8s-api-scale",
) -> dict[str, Any]:
    """Scale the Deployment ``name`` to ``replicas`` through its scale subresource, lowering
    the minReplicas of the HPAs on it to match (else they scale it back); wait until it runs
    exactly ``replicas`` Pods, all available. :func:`restore_deployment` undoes both."""
    check_within("within_s", within_s, MAX_WAIT_S)
    if replicas < 1:
        raise ActivityFailed(f"replicas must be at least 1 (an HPA's floor), not {replicas}")
    run = _cluster.load(target_file)
    with run.client() as api:
        apps, hpa_api = k8s.AppsV1Api(api), k8s.AutoscalingV2Api(api)
        scale: Any = apps.read_namespaced_deployment_scale(
            name, run.namespace, _request_timeout=CALL_TIMEOUT_S
        )
        hpas = _hpas_of(hpa_api, run.namespace, name)
        if not _cluster.recalled(run, STATE_FILE, fault_name):  # keep the first originals
            facts = {
                "deployment": name,
                "replicas": scale.spec.replicas,
                "hpa_min": {h.metadata.name: h.spec.min_replicas or 1 for h in hpas},
            }
            _cluster.remember(run, STATE_FILE, fault_name, facts)
        lowered = [h for h in hpas if (h.spec.min_replicas or 1) > replicas]
        _cluster.record(
            run,
            fault_name,
            "injected",
            target=f"deployment/{name}",
            detail=f"scaled from {scale.spec.replicas} to {replicas} replicas"
            + "".join(f"; HPA {h.metadata.name} minReplicas {replicas}" for h in lowered),
        )
        for hpa in lowered:
            _set_hpa_min(hpa_api, run.namespace, hpa.metadata.name, replicas)
        _set_scale(apps, run.namespace, name, replicas)
        _await(apps, run.namespace, name, replicas, within_s, exact=True)
    log.info("scaled deployment %s to %d replicas", name, replicas)
    return {"deployment": name, "from": scale.spec.replicas, "to": replicas}


def restore_deployment(
    target_file: str = "", name: str = "refplat-api", fault_name: str = "k8s-api-scale"
) -> dict[str, Any]:
    """Rollback of :func:`scale_deployment`: put the replicas and the HPAs' minReplicas back
    as they were before it (nothing when it has not run, or was already undone)."""
    run = _cluster.load(target_file)
    saved = _cluster.recalled(run, STATE_FILE, fault_name)
    if not saved or saved.get("deployment") != name:
        return {}
    with run.client() as api:
        apps, hpa_api = k8s.AppsV1Api(api), k8s.AutoscalingV2Api(api)
        for hpa, minimum in saved["hpa_min"].items():
            _set_hpa_min(hpa_api, run.namespace, hpa, minimum)
        _set_scale(apps, run.namespace, name, saved["replicas"])
    _cluster.remember(run, STATE_FILE, fault_name, None)
    log.info("deployment %s back to %d replicas", name, saved["replicas"])
    return {"deployment": name, "replicas": saved["replicas"], "hpa_min": saved["hpa_min"]}


def deployment_available(
    target_file: str = "",
    name: str = "refplat-api",
    replicas: int = 3,
    within_s: float = 60.0,
    fault_name: str = "",
) -> bool:
    """True when, within ``within_s``, the Deployment ``name`` has observed its spec and at
    least ``replicas`` available Pods (more are the HPA's right). After ``fault_name`` the
    instant this holds is recorded on the timeline as ``recovered``."""
    check_within("within_s", within_s, MAX_WAIT_S)
    run = _cluster.load(target_file)
    injected = _cluster.pending(run, fault_name)
    with run.client() as api:
        try:
            _await(k8s.AppsV1Api(api), run.namespace, name, replicas, within_s, exact=False)
        except ActivityFailed as exc:
            log.warning("%s", exc)
            return False
    if injected:
        _cluster.record(
            run,
            fault_name,
            "recovered",
            target=f"deployment/{name}",
            detail=f"{replicas} replicas available again",
        )
    return True


def _hpas_of(hpa_api: k8s.AutoscalingV2Api, namespace: str, deployment: str) -> list[Any]:
    found: Any = hpa_api.list_namespaced_horizontal_pod_autoscaler(
        namespace, _request_timeout=CALL_TIMEOUT_S
    )
    return [
        h
        for h in found.items
        if h.spec.scale_target_ref.kind == "Deployment"
        and h.spec.scale_target_ref.name == deployment
    ]


def _set_hpa_min(hpa_api: k8s.AutoscalingV2Api, namespace: str, name: str, minimum: int) -> None:
    hpa_api.patch_namespaced_horizontal_pod_autoscaler(
        name, namespace, {"spec": {"minReplicas": minimum}}, _request_timeout=CALL_TIMEOUT_S
    )


def _set_scale(apps: k8s.AppsV1Api, namespace: str, name: str, replicas: int) -> None:
    apps.patch_namespaced_deployment_scale(
        name, namespace, {"spec": {"replicas": replicas}}, _request_timeout=CALL_TIMEOUT_S
    )


def _await(
    apps: k8s.AppsV1Api, namespace: str, name: str, replicas: int, within_s: float, *, exact: bool
) -> None:
    """Wait until ``name`` has ``replicas`` available Pods (``exact``: and no more Pods)."""
    deadline = time.monotonic() + within_s
    while why := _unavailable(apps, namespace, name, replicas, exact=exact):
        if time.monotonic() >= deadline:
            raise ActivityFailed(
                f"{why} after {within_s:g} s; see `kubectl -n {namespace} describe deployment "
                f"{name}`."
            )
        time.sleep(POLL_S)


def _unavailable(
    apps: k8s.AppsV1Api, namespace: str, name: str, replicas: int, *, exact: bool = False
) -> str:
    """Why Deployment ``name`` lacks ``replicas`` available Pods (0: its spec's count); ""."""
    obj: Any = apps.read_namespaced_deployment_status(
        name, namespace, _request_timeout=CALL_TIMEOUT_S
    )
    status = obj.status
    want = replicas or obj.spec.replicas or 0
    available, running = status.available_replicas or 0, status.replicas or 0
    if (status.observed_generation or 0) < obj.metadata.generation:
        return f"deployment {name} has not observed its latest spec"
    if available < want or (exact and running != want):
        return f"deployment {name}: {available} available of {running} Pods, {want} wanted"
    return ""
