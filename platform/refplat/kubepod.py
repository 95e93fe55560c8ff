"""The Pod of one game server on the kube runtime (see :mod:`refplat.kuberuntime`), as data.

Labels: ``app.kubernetes.io/name: gameserver``, ``gsharness.io/server-id`` and
``gsharness.io/node`` (the platform node, i.e. the runtime, that owns it). The owner is the
runtime's ConfigMap ``refplat-runtime-<node>``: deleting it garbage-collects every Pod of the
runtime. Resources: the server's memory as request and limit, a CPU request and limit, and a
10 GiB ``ephemeral-storage`` request and limit for the session's world data (the kubelet
evicts a Pod that writes more; the runtime then sees a Failed Pod and the server turns
Unhealthy). The spec passes Pod Security ``restricted``. ``restartPolicy: Never``: a crashed
game server is a failed Pod, not a silent restart under a Ready record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from refplat.model import GameServer

SERVER_ID_LABEL = "gsharness.io/server-id"
NODE_LABEL = "gsharness.io/node"
GAME_PORT = 25565
DEFAULT_IMAGE = "refplat:latest"
WORLD_STORAGE = "10Gi"
CPU_REQUEST = "250m"
CPU_LIMIT = "1"
TERMINATION_GRACE_S = 10
KWOK_TOLERATION = {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}


@dataclass(frozen=True)
class PodSpecSettings:
    """What every game-server Pod of one runtime shares."""

    image: str = DEFAULT_IMAGE
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerate_kwok: bool = True


def owner_config_map(node: str) -> str:
    """The name of the ConfigMap that owns the Pods of the runtime of ``node``."""
    return f"refplat-runtime-{node}"


def pod_manifest(
    server: GameServer, *, settings: PodSpecSettings, node: str, owner: dict[str, Any]
) -> dict[str, Any]:
    """The Pod of ``server`` (a ``generateName``: a restarted server gets a new Pod)."""
    memory = f"{server.memory_mib}Mi"
    resources = {
        "requests": {"cpu": CPU_REQUEST, "memory": memory, "ephemeral-storage": WORLD_STORAGE},
        "limits": {"cpu": CPU_LIMIT, "memory": memory, "ephemeral-storage": WORLD_STORAGE},
    }
    container = {
        "name": "gameserver",
        "image": settings.image,
        "args": [
            *("gameserver", "--listen", f"0.0.0.0:{GAME_PORT}"),
            *("--version", server.version, "--server-id", server.id),
        ],
        "ports": [{"name": "minecraft", "containerPort": GAME_PORT, "protocol": "TCP"}],
        "resources": resources,
        "readinessProbe": {"tcpSocket": {"port": GAME_PORT}, "periodSeconds": 5},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        "containers": [container],
    }
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerate_kwok:
        spec["tolerations"] = [KWOK_TOLERATION]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{server.id}-",
            "labels": {
                "app.kubernetes.io/name": "gameserver",
                "app.kubernetes.io/managed-by": "refplat",
                SERVER_ID_LABEL: server.id,
                NODE_LABEL: node,
            },
            "annotations": {"gsharness.io/tenant": server.tenant},
            "ownerReferences": [owner],
        },
        "spec": spec,
    }
