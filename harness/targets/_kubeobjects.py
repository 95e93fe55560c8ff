"""Pure functions over rendered manifests for the kube target: which namespace a run gets,
moving objects into it, the order they are applied in, and the in-cluster URLs of Services."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

from harness.util.errors import ConfigError

RUN_LABEL = "gsharness.io/run-id"
KIND_CRD = "CustomResourceDefinition"


APPLY_ORDER = ("Namespace", KIND_CRD, "ServiceAccount", "Role")
# Service port name -> URL scheme of its in-cluster URL.
URL_SCHEMES = {"http": "http", "web": "http", "metrics": "http", "redis": "redis"}
CLUSTER_SCOPED = frozenset(
    {
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PersistentVolume",
        "StorageClass",
        "PriorityClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "Node",
    }
)


def crd_established(crd: dict[str, Any]) -> bool:
    """Whether a CustomResourceDefinition, as read back (a dict), says its kinds are served."""
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def namespace_for(run_id: str) -> str:
    """The run's namespace: ``gsh-<run id>`` as a DNS-1123 label (63 characters at most)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")
    return f"gsh-{slug}"[:63].rstrip("-")


def relocate(
    objects: Iterable[dict[str, Any]], *, namespace: str, run_id: str
) -> list[dict[str, Any]]:
    """Copies of ``objects`` moved into ``namespace``, each labelled with the run id.

    The overlay's Namespace (at most one) is renamed; without one, a plain Namespace is added.
    Namespaced objects get ``metadata.namespace``; RoleBinding subjects that named the
    overlay's namespace name the run's. Cluster-scoped kinds other than Namespace are refused:
    a per-run install must not touch what other runs share.
    """
    out: list[dict[str, Any]] = []
    old = ""
    for src in objects:
        obj = yaml.safe_load(yaml.safe_dump(src))  # a deep copy of plain data
        meta = obj.setdefault("metadata", {})
        meta.setdefault("labels", {})[RUN_LABEL] = run_id
        if obj["kind"] == "Namespace":
            old, meta["name"] = meta["name"], namespace
        elif obj["kind"] in CLUSTER_SCOPED:
            raise ConfigError(
                f"{obj['kind']}/{meta.get('name')} is cluster-scoped; a per-run namespace "
                "install cannot own it. Move it out of the overlay (crds/ is applied apart)."
            )
        else:
            old = old or meta.get("namespace", "")
            meta["namespace"] = namespace
        out.append(obj)
    for obj in out:
        for subject in obj.get("subjects", []) if obj["kind"] == "RoleBinding" else []:
            if subject.get("namespace") in (old, None) and subject.get("kind") == "ServiceAccount":
                subject["namespace"] = namespace
    if not any(o["kind"] == "Namespace" for o in out):
        ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        ns["metadata"]["labels"] = {RUN_LABEL: run_id}  # type: ignore[index]
        out.insert(0, ns)
    return out


def apply_rank(obj: dict[str, Any]) -> int:
    kind = obj["kind"]
    return APPLY_ORDER.index(kind) if kind in APPLY_ORDER else len(APPLY_ORDER)


def replicas(obj: dict[str, Any]) -> int:
    replicas = obj.get("spec", {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def service_url(service: dict[str, Any], namespace: str) -> str:
    """``<scheme>://<name>.<namespace>.svc:<port>`` of a Service's first port."""
    ports = service.get("spec", {}).get("ports", [])
    if not ports:
        return ""
    port = ports[0]
    scheme = URL_SCHEMES.get(port.get("name", ""), "tcp")
    return f"{scheme}://{service['metadata']['name']}.{namespace}.svc:{port['port']}"
