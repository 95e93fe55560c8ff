"""The platform's NetworkPolicies, enforced: a Pod the policies do not name cannot reach Redis.

The base manifests deny all traffic in the namespace (``default-deny``), then allow each
component what it needs; Redis accepts only the platform's own Pods. The fault is an intruder:
:func:`connect_from_outside` starts a short-lived Pod in the run's namespace, with none of the
labels the policies allow, that resolves the Redis Service (DNS is allowed to every Pod) and
tries to open a TCP connection to it; its exit code says what happened. The hypothesis,
:func:`default_deny_enforced`: before the fault, a default-deny policy is declared and Redis has a
ready endpoint (so a failed connection cannot be a dead Redis); after it, the intruder's
connection failed.

This needs a CNI that enforces NetworkPolicies (kind's kindnet does since kind 0.24, as do
Calico and Cilium). On KWOK nodes nothing enforces them, and no container runs at all, so the
kube-kwok target does not offer the ``network-policy`` capability and the experiment is SKIPPED
there; elsewhere an unenforced policy is a FAIL, as it should be.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from typing import Any

from kubernetes import client as k8s

from harness.chaos._target import ActivityFailed, check_within
from harness.chaos.kube import _cluster
from harness.chaos.kube._cluster import CALL_TIMEOUT_S, KubeRun

__all__ = ["connect_from_outside", "default_deny_enforced", "intruder_pod"]

log = logging.getLogger(__name__)

POLL_S = 0.5
MAX_WAIT_S = 300.0
IMAGE_FROM = "refplat-api"  # the platform's image: it is on every node that runs the API
RUN_LABEL = "gsharness.io/run-id"
INTRUDER_NAME = "gsharness-intruder"
STATE_FILE = "kube-netpolicy.json"
# The intruder's exit codes (its script, below).
DENIED, CONNECTED, NO_DNS = 0, 1, 2
OUTCOMES = {DENIED: "denied", CONNECTED: "connected", NO_DNS: "no-dns"}
SCRIPT = """\
import socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def done(code, message):
    try:
        with open("/dev/termination-log", "w") as log:
            log.write(message)
    except OSError:
        pass
    print(message)
    sys.exit(code)
try:
    socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
except OSError as exc:
    done(2, f"cannot resolve {host}: {exc}")
try:
    socket.create_connection((host, port), timeout=timeout).close()
except OSError as exc:
    done(0, f"connection to {host}:{port} failed: {exc}")
done(1, f"connected to {host}:{port}")
"""


def intruder_pod(
    *,
    name: str,
    namespace: str,
    run_id: str,
    image: str,
    host: str,
    port: int,
    connect_timeout_s: float,
) -> dict[str, Any]:
    """The intruder's Pod: Pod Security ``restricted``, no ServiceAccount token, none of the
    labels the platform's policies allow, and a deadline so it cannot outlive its purpose."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/name": INTRUDER_NAME,
                "app.kubernetes.io/managed-by": "gsharness",
                RUN_LABEL: run_id,
            },
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": math.ceil(connect_timeout_s) + 30,
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "connect",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", SCRIPT, host, str(port), f"{connect_timeout_s:g}"],
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"cpu": "200m", "memory": "64Mi", "ephemeral-storage": "8Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "runAsNonRoot": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def connect_from_outside(
    target_file: str = "",
    *,
    service: str = "refplat-redis",
    port: int = 6379,
    connect_timeout_s: float = 5.0,
    within_s: float = 60.0,
    fault_name: str = "k8s-network-policy-deny",
) -> dict[str, Any]:
    """Run an intruder Pod that connects to ``service``:``port`` and wait for its outcome
    (``denied``, ``connected`` or ``no-dns``); the Pod is deleted on every path. Raises
    ActivityFailed when it gives none within ``within_s`` (no verdict either way)."""
    check_within("within_s", within_s, MAX_WAIT_S)
    check_within("connect_timeout_s", connect_timeout_s, within_s)
    run = _cluster.load(target_file)
    with run.client() as api:
        core = k8s.CoreV1Api(api)
        name = f"{INTRUDER_NAME}-{uuid.uuid4().hex[:6]}"
        body: Any = intruder_pod(
            name=name,
            namespace=run.namespace,
            run_id=run.endpoints.run_id,
            image=_platform_image(k8s.AppsV1Api(api), run.namespace),
            host=service,
            port=port,
            connect_timeout_s=connect_timeout_s,
        )
        _cluster.record(
            run,
            fault_name,
            "injected",
            target=f"service/{service}:{port}",
            detail=f"Pod {name}, without the platform's labels, connects",
        )
        core.create_namespaced_pod(run.namespace, body, _request_timeout=CALL_TIMEOUT_S)
        try:
            outcome, message = _outcome(core, run.namespace, name, within_s)
        finally:
            _delete(core, run.namespace, name)
    _cluster.remember(run, STATE_FILE, fault_name, {"outcome": outcome, "message": message})
    log.info("intruder %s: %s (%s)", name, outcome, message)
    return {"pod": name, "outcome": outcome, "message": message}


def default_deny_enforced(
    target_file: str = "",
    service: str = "refplat-redis",
    fault_name: str = "k8s-network-policy-deny",
) -> bool:
    """Before ``fault_name``: a default-deny NetworkPolicy (every Pod, ingress and egress) is
    declared and ``service`` has a ready endpoint. After it: also, the intruder's connection
    was denied; that is recorded on the timeline as ``recovered`` (the platform held)."""
    run = _cluster.load(target_file)
    with run.client() as api:
        wrong = _preconditions(api, run, service)
    if wrong:
        log.warning("network policy hypothesis: %s", wrong)
        return False
    if not _cluster.pending(run, fault_name):
        return True
    result = _cluster.recalled(run, STATE_FILE, fault_name)
    if result.get("outcome") != OUTCOMES[DENIED]:
        log.warning(
            "the intruder's connection was not denied: %s (%s); the namespace's NetworkPolicies "
            "are not enforced by this cluster's network plugin",
            result.get("outcome", "no outcome"),
            result.get("message", ""),
        )
        return False
    _cluster.record(
        run, fault_name, "recovered", target=f"service/{service}", detail=result["message"]
    )
    return True


def _preconditions(api: Any, run: KubeRun, service: str) -> str:
    """What is missing for a failed connection to prove the policies ("" when nothing)."""
    policies: Any = k8s.NetworkingV1Api(api).list_namespaced_network_policy(
        run.namespace, _request_timeout=CALL_TIMEOUT_S
    )
    if not any(_denies_all(p) for p in policies.items):
        return f"namespace {run.namespace} has no default-deny NetworkPolicy"
    slices: Any = k8s.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        run.namespace,
        label_selector=f"kubernetes.io/service-name={service}",
        _request_timeout=CALL_TIMEOUT_S,
    )
    ready = [
        e
        for s in slices.items
        for e in s.endpoints or []
        if e.conditions is not None and e.conditions.ready
    ]
    if not ready:
        return f"service {service} has no ready endpoint (a failed connection would prove nothing)"
    return ""


def _denies_all(policy: Any) -> bool:
    spec = policy.spec
    selects_all = not (spec.pod_selector.match_labels or spec.pod_selector.match_expressions)
    return (
        selects_all
        and {"Ingress", "Egress"} <= set(spec.policy_types or [])
        and not spec.ingress
        and not spec.egress
    )


def _platform_image(apps: k8s.AppsV1Api, namespace: str) -> str:
    deployment: Any = apps.read_namespaced_deployment(
        IMAGE_FROM, namespace, _request_timeout=CALL_TIMEOUT_S
    )
    return str(deployment.spec.template.spec.containers[0].image)


def _outcome(core: k8s.CoreV1Api, namespace: str, name: str, within_s: float) -> tuple[str, str]:
    """The intruder's outcome and message, once its container has terminated."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        pod: Any = core.read_namespaced_pod(name, namespace, _request_timeout=CALL_TIMEOUT_S)
        for status in (pod.status.container_statuses or []) if pod.status else []:
            ended = status.state.terminated if status.state else None
            if ended is not None:
                code = int(ended.exit_code)
                return OUTCOMES.get(code, f"exit {code}"), str(ended.message or "").strip()
        time.sleep(POLL_S)
    raise ActivityFailed(
        f"the intruder Pod {name} (namespace {namespace}) gave no outcome within {within_s:g} s; "
        f"see `kubectl -n {namespace} get events` (image pull, scheduling)."
    )


def _delete(core: k8s.CoreV1Api, namespace: str, name: str) -> None:
    try:
        core.delete_namespaced_pod(
            name,
            namespace,
            body=k8s.V1DeleteOptions(grace_period_seconds=0),
            _request_timeout=CALL_TIMEOUT_S,
        )
    except k8s.ApiException as exc:
        if exc.status != 404:
            log.warning("could not delete the intruder Pod %s: HTTP %s", name, exc.status)
