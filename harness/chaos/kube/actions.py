"""Actions against the ``kube`` target: game-server Pods terminated, Nodes drained or deleted.

chaostoolkit-kubernetes (``chaosk8s``) has activities of the same names, but they take the
namespace as a literal (ours is per run, ``gsh-<run id>``), load ``$KUBECONFIG`` or
``~/.kube/config`` into the client library's process-wide default configuration (so they could
act on another cluster than the run's), and ``drain_nodes`` raises TypeError on Pods without
volumes or owner references (every game-server Pod here). These are thin replacements on the
``kubernetes`` client with the same semantics, scoped to the run's namespace and cluster.

Victims are game servers that hold no session (Ready, not Allocated), as the local target's
faults prefer, so the sessions the harness holds across faults are not ended on purpose; each
action records its fault instant on the run's timeline and its victims in the run directory.
The platform handles a lost Pod as a lost server (refplat's kube runtime and controller put the
server back and a new Pod serves it); the experiments' probes check that it did, by itself.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes import client as k8s

from harness.chaos._target import ActivityFailed
from harness.chaos.kube import _cluster
from harness.chaos.kube._cluster import CALL_TIMEOUT_S, KubeRun, Placed
from harness.targets import record_node
from harness.targets import restore_nodes as _restore_nodes

__all__ = [
    "delete_node",
    "drain_node",
    "restore_nodes",
    "terminate_gameserver_pods",
]

log = logging.getLogger(__name__)

POLL_S = 0.25


def terminate_gameserver_pods(
    target_file: str = "",
    qty: int = 2,
    grace_period: int = 0,
    fault_name: str = "k8s-gameserver-pod-terminate",
) -> list[str]:
    """Delete the Pods of ``qty`` game servers that hold no session (as chaosk8s'
    ``terminate_pods`` with ``mode: fixed``); return the deleted Pods' names."""
    run = _cluster.load(target_file)
    with run.client() as api:
        core = k8s.CoreV1Api(api)
        candidates = [p for p in _cluster.placed(run, core) if p.state == "Ready" and p.serving]
        if len(candidates) < qty:
            raise ActivityFailed(
                f"only {len(candidates)} Ready game servers with a running Pod in namespace "
                f"{run.namespace}; {qty} needed"
            )
        chosen = sorted(candidates, key=lambda p: p.server_id)[:qty]
        names = [p.pod.metadata.name for p in chosen]
        _cluster.save_victims(run, fault_name, chosen, node="")
        _cluster.record(
            run,
            fault_name,
            "injected",
            target=", ".join(names),
            detail=f"deleted the Pods of {', '.join(p.server_id for p in chosen)} "
            f"(grace {grace_period} s)",
        )
        body = k8s.V1DeleteOptions(grace_period_seconds=grace_period)
        for name in names:
            core.delete_namespaced_pod(
                name, run.namespace, body=body, _request_timeout=CALL_TIMEOUT_S
            )
    log.info("terminated game-server pods %s", ", ".join(names))
    return names


def drain_node(
    target_file: str = "", node: str = "", fault_name: str = "k8s-node-drain"
) -> dict[str, Any]:
    """Cordon a Node and evict the run's Pods on it through the Eviction API (PDBs apply).

    ``node`` empty: the KWOK node with the most game servers of the run and none holding a
    session. Only the run's namespace is drained: a shared test cluster's other Pods stay.
    """
    run = _cluster.load(target_file)
    with run.client() as api:
        core = k8s.CoreV1Api(api)
        name, on_node = _take_node(run, api, core, node, change="cordoned", fault_name=fault_name)
        core.patch_node(name, {"spec": {"unschedulable": True}}, _request_timeout=CALL_TIMEOUT_S)
        _cluster.record(
            run,
            fault_name,
            "injected",
            target=name,
            detail=f"cordoned; evicting the Pods of {', '.join(p.server_id for p in on_node)}",
        )
        for victim in on_node:
            _evict(core, victim.pod)
    log.info("drained node %s: %d pods evicted", name, len(on_node))
    return {"node": name, "evicted": [v.pod.metadata.name for v in on_node]}


def delete_node(
    target_file: str = "", node: str = "", fault_name: str = "k8s-node-delete"
) -> dict[str, Any]:
    """Delete a Node object, and the run's Pods bound to it, as the Pod garbage collector does
    for Pods of a Node that no longer exists (without its 40 s quarantine).

    ``node`` empty: chosen as by :func:`drain_node`. The Node is created again by the
    :func:`restore_nodes` rollback, and at the target's teardown.
    """
    run = _cluster.load(target_file)
    with run.client() as api:
        core = k8s.CoreV1Api(api)
        name, on_node = _take_node(run, api, core, node, change="deleted", fault_name=fault_name)
        _cluster.record(
            run,
            fault_name,
            "injected",
            target=name,
            detail=f"deleted with the Pods of {', '.join(p.server_id for p in on_node)}",
        )
        core.delete_node(name, _request_timeout=CALL_TIMEOUT_S)
        body = k8s.V1DeleteOptions(grace_period_seconds=0)
        for victim in on_node:
            _ignore_404(
                lambda v=victim: core.delete_namespaced_pod(
                    v.pod.metadata.name, run.namespace, body=body, _request_timeout=CALL_TIMEOUT_S
                )
            )
    log.info("deleted node %s and %d pods on it", name, len(on_node))
    return {"node": name, "deleted": [v.pod.metadata.name for v in on_node]}


def _take_node(
    run: KubeRun,
    api: Any,  # the kubernetes ApiClient of run.client() (untyped)
    core: k8s.CoreV1Api,
    node: str,
    *,
    change: str,
    fault_name: str,
) -> tuple[str, list[Placed]]:
    """Choose the Node a node fault takes (see :func:`_victim_node`), keep its object for the
    rollback (``change``: what the fault does to it) and the servers it will lose."""
    name, on_node = _victim_node(run, core, node)
    obj = api.sanitize_for_serialization(core.read_node(name, _request_timeout=CALL_TIMEOUT_S))
    record_node(run.run_dir, change=change, node=obj)
    _cluster.save_victims(run, fault_name, _lost(on_node), node=name)
    return name, on_node


def restore_nodes(target_file: str = "") -> list[str]:
    """Rollback: create again the Nodes a fault deleted, uncordon those it cordoned."""
    run = _cluster.load(target_file)
    with run.client() as api:
        return _restore_nodes(api, run.run_dir)


def _victim_node(run: KubeRun, core: k8s.CoreV1Api, node: str) -> tuple[str, list[Placed]]:
    """The Node to take away and the placed servers on it (none of them Allocated)."""
    by_node: dict[str, list[Placed]] = {}
    for p in _cluster.placed(run, core, seeded_only=False):
        if p.pod is not None and p.node:
            by_node.setdefault(p.node, []).append(p)
    if node:
        return node, by_node.get(node, [])
    spare = {
        name: on
        for name, on in by_node.items()
        if any(p.state == "Ready" for p in on) and not any(p.state == "Allocated" for p in on)
    }
    if not spare:
        raise ActivityFailed(
            f"every node with game servers of namespace {run.namespace} holds an allocated "
            "one; pass `node` to take one anyway"
        )
    name = max(sorted(spare), key=lambda n: len(spare[n]))
    return name, spare[name]


def _lost(on_node: list[Placed]) -> list[Placed]:
    """The servers that lose their Pod: serving ones (a Starting one just gets a new Pod)."""
    return [p for p in on_node if p.state == "Ready" and p.serving]


def _evict(core: k8s.CoreV1Api, pod: Any) -> None:
    meta = k8s.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace)
    body = k8s.V1Eviction(metadata=meta, delete_options=k8s.V1DeleteOptions(grace_period_seconds=0))
    _ignore_404(
        lambda: core.create_namespaced_pod_eviction(
            pod.metadata.name, pod.metadata.namespace, body, _request_timeout=CALL_TIMEOUT_S
        )
    )


def _ignore_404(call: Any) -> None:
    try:
        call()
    except k8s.ApiException as exc:
        if exc.status != 404:
            raise
