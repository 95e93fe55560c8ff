"""refplat's kube runtime and kube Lease against the real control plane: game servers are Pods.

The api, a controller electing itself on a ``coordination.k8s.io`` Lease, and ``refplat
kube-agent`` run as processes on a real Redis; KWOK marks the Pods Running and Ready. The agent
and the controller authenticate as the ServiceAccount ``refplat-controller`` with the Role of
platform/manifests/base/runtime/controller-rbac.yaml (a token from the TokenRequest API), so
these tests also prove that Role sufficient. The controller re-places the sessions of lost
servers (``--lost-session-policy replace``).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from mcstatus import JavaServer

from harness.targets import KubeCluster
from harness.util.net import free_port
from harness.util.scratch import scratch_redis, stop_process
from refplat.kubelease import KubeLease
from refplat.kubewatch import kube_client
from refplat.store import FencedError, Store, connect
from tests.conftest import REPO_ROOT
from tests.integration.test_refplat_platform import ADMIN_TOKEN, Launcher, call, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

WAIT_S = 30.0
NODE = "kube-pool"
GAME_PORT = 25565
RBAC = REPO_ROOT / "platform/manifests/base/runtime/controller-rbac.yaml"
SERVICE_ACCOUNT = "refplat-controller"


class KubePlatform:
    """The processes of one test and the handles it needs."""

    def __init__(self, launcher: Launcher, core: k8s.CoreV1Api, namespace: str) -> None:
        self.launcher = launcher
        self.core = core
        self.namespace = namespace
        self.api = ""
        self.token = ""

    def create_server(self) -> str:
        status, body = call("POST", f"{self.api}/v1/servers", token=self.token, body={})
        assert 201 == status, body
        return str(body["id"])

    def server(self, server_id: str) -> dict[str, Any]:
        status, body = call("GET", f"{self.api}/v1/servers/{server_id}", token=self.token)
        return dict(body) if status == 200 else {"state": f"HTTP {status}"}

    def wait_state(self, server_id: str, state: str) -> dict[str, Any]:
        return wait_for(
            f"server {server_id} {state}",
            lambda: (s := self.server(server_id))["state"] == state and s,
            timeout_s=WAIT_S,
        )

    def wait_new_pod(self, server_id: str, old: k8s.V1Pod) -> tuple[dict[str, Any], k8s.V1Pod]:
        """The server Ready again in one Pod other than ``old``, at that Pod's IP."""

        def replaced() -> tuple[dict[str, Any], k8s.V1Pod] | None:
            server, pods = self.server(server_id), self.pods(server_id)
            if server["state"] != "Ready" or len(pods) != 1:
                return None
            (pod,) = pods
            if pod.metadata.uid == old.metadata.uid or pod.status.pod_ip != server["address"]:
                return None
            return server, pod

        found: tuple[dict[str, Any], k8s.V1Pod] = wait_for(
            f"server {server_id} Ready in a new pod", replaced, timeout_s=WAIT_S
        )
        return found

    def allocate(self) -> dict[str, Any]:
        status, body = call("POST", f"{self.api}/v1/sessions", token=self.token, body={})
        assert 201 == status, body
        return dict(body)

    def session(self, session_id: str) -> dict[str, Any]:
        status, body = call("GET", f"{self.api}/v1/sessions/{session_id}", token=self.token)
        assert 200 == status, body
        return dict(body)

    def restart(self, server_id: str) -> None:
        url = f"{self.api}/v1/servers/{server_id}/power"
        status, body = call("POST", url, token=self.token, body={"signal": "restart"})
        assert 202 == status, body

    def pods(self, server_id: str) -> list[k8s.V1Pod]:
        selector = f"gsharness.io/server-id={server_id}"
        found = self.core.list_namespaced_pod(
            self.namespace, label_selector=selector, _request_timeout=10
        )
        return [p for p in found.items if p.metadata.deletion_timestamp is None]


@pytest.fixture(scope="module")
def kube_platform(
    kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubePlatform]:
    """api, controller (kube Lease) and kube-agent on one Redis; a tenant; stopped after."""
    tmp_path = tmp_path_factory.mktemp("kube-platform")
    namespace = f"rp-{uuid.uuid4().hex[:8]}"
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(scratch_redis(tmp_path))
        api = stack.enter_context(kube_cluster.api_client())
        core = k8s.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": namespace}}, _request_timeout=10)
        stack.callback(core.delete_namespace, namespace, _request_timeout=10)
        launcher = Launcher(redis_url=redis_url, tmp_path=tmp_path)
        stack.callback(launcher.close)
        kubeconfig = service_account_kubeconfig(kube_cluster, api, namespace, tmp_path)
        yield _started(KubePlatform(launcher, core, namespace), kubeconfig)


def service_account_kubeconfig(
    cluster: KubeCluster, api: k8s.ApiClient, namespace: str, directory: Path
) -> Path:
    """The manifests' ServiceAccount, Role and RoleBinding in ``namespace``; its kubeconfig."""
    core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
    for doc in yaml.safe_load_all(RBAC.read_text()):
        doc["metadata"]["namespace"] = namespace
        for subject in doc.get("subjects", []):
            subject["namespace"] = namespace
        create = {
            "ServiceAccount": core.create_namespaced_service_account,
            "Role": rbac.create_namespaced_role,
            "RoleBinding": rbac.create_namespaced_role_binding,
        }[doc["kind"]]
        create(namespace, doc, _request_timeout=10)
    request = {"spec": {"expirationSeconds": 3600}}
    token = core.create_namespaced_service_account_token(
        SERVICE_ACCOUNT, namespace, request, _request_timeout=10
    ).status.token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": cluster.api_url,
                    "certificate-authority": str(cluster.pki.ca.cert),
                },
            }
        ],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": SERVICE_ACCOUNT}}],
        "current-context": "c",
    }
    path = directory / "service-account.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def _started(plat: KubePlatform, kubeconfig_path: Path) -> KubePlatform:
    launcher, namespace, kubeconfig = plat.launcher, plat.namespace, str(kubeconfig_path)
    agent = launcher.start(
        "kube-agent",
        *("kube-agent", "--namespace", namespace, "--node", NODE),
        *("--kubeconfig", kubeconfig, "--node-selector", "type=kwok"),
    )[1]
    ctl = launcher.start(
        "ctl",
        *("controller", "--id", "ctl-a", "--kubeconfig", kubeconfig),
        *("--kube-lease", f"{namespace}/refplat-controller"),
        *("--lost-session-policy", "replace"),
    )[1]
    plat.api = launcher.start_api()
    launcher.wait_healthy(agent, ctl)
    status, body = call("POST", f"{plat.api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "k"})
    assert 201 == status, body
    plat.token = str(body["token"])
    return plat


def test_a_server_is_a_labelled_owned_pod_and_turns_ready_at_its_pod_ip(
    kube_platform: KubePlatform,
) -> None:
    server_ids = [kube_platform.create_server() for _ in range(3)]
    for server_id in server_ids:
        server = kube_platform.wait_state(server_id, "Ready")
        (pod,) = kube_platform.pods(server_id)
        assert (pod.status.pod_ip, GAME_PORT, NODE) == (
            server["address"],
            server["port"],
            server["node"],
        )
        labels = pod.metadata.labels
        assert ("gameserver", server_id) == (
            labels["app.kubernetes.io/name"],
            labels["gsharness.io/server-id"],
        )
        (owner,) = pod.metadata.owner_references
        assert ("ConfigMap", f"refplat-runtime-{NODE}") == (owner.kind, owner.name)
        (container,) = pod.spec.containers
        assert "10Gi" == container.resources.limits["ephemeral-storage"]
        assert "10Gi" == container.resources.requests["ephemeral-storage"]
        assert {"type": "kwok"} == pod.spec.node_selector
        assert pod.spec.node_name.startswith("kwok-node-")


def delete_pod(core: k8s.CoreV1Api, pod: k8s.V1Pod) -> None:
    core.delete_namespaced_pod(
        pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0, _request_timeout=10
    )


def evict_pod(core: k8s.CoreV1Api, pod: k8s.V1Pod) -> None:
    """The Eviction API (as a drain does it)."""
    meta = k8s.V1ObjectMeta(name=pod.metadata.name, namespace=pod.metadata.namespace)
    body = k8s.V1Eviction(metadata=meta, delete_options=k8s.V1DeleteOptions(grace_period_seconds=0))
    core.create_namespaced_pod_eviction(
        pod.metadata.name, pod.metadata.namespace, body, _request_timeout=10
    )


def fail_pod(core: k8s.CoreV1Api, pod: k8s.V1Pod) -> None:
    """What the kubelet writes when it evicts a Pod over its ephemeral-storage limit."""
    status = {"status": {"phase": "Failed", "reason": "Evicted", "message": "ephemeral storage"}}
    core.patch_namespaced_pod_status(
        pod.metadata.name, pod.metadata.namespace, status, _request_timeout=10
    )


@pytest.mark.parametrize(
    "lose", [delete_pod, evict_pod, fail_pod], ids=["deleted", "evicted", "failed-evicted"]
)
def test_a_lost_pod_is_handled_like_a_lost_server_a_new_pod_and_its_session_re_placed(
    kube_platform: KubePlatform, lose: Callable[[k8s.CoreV1Api, k8s.V1Pod], None]
) -> None:
    for server_id in [kube_platform.create_server() for _ in range(2)]:
        kube_platform.wait_state(server_id, "Ready")
    session = kube_platform.allocate()
    lost_id = session["server_id"]
    (victim,) = kube_platform.pods(lost_id)

    lose(kube_platform.core, victim)

    # No restart through the api: the controller puts the server back and a new Pod serves it.
    server, pod = kube_platform.wait_new_pod(lost_id, victim)
    assert victim.metadata.name != pod.metadata.name
    assert server["session"] is None
    moved = kube_platform.session(session["id"])
    assert ("Active", 1) == (moved["state"], moved.get("replacements")), moved
    assert lost_id != moved["server_id"]
    assert "Allocated" == kube_platform.server(moved["server_id"])["state"]


def test_a_pod_that_stops_being_ready_makes_its_server_unhealthy_until_a_restart(
    kube_platform: KubePlatform,
) -> None:
    """A Running Pod whose readiness fails is a game server that stopped serving, as a dead
    listener on the local runtime: Unhealthy (not replaced) until a restart brings a new Pod."""
    server_id = kube_platform.create_server()
    kube_platform.wait_state(server_id, "Ready")
    (victim,) = kube_platform.pods(server_id)
    status = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    kube_platform.core.patch_namespaced_pod_status(
        victim.metadata.name, victim.metadata.namespace, status, _request_timeout=10
    )
    unhealthy = kube_platform.wait_state(server_id, "Unhealthy")
    assert unhealthy.get("lost") is None
    kube_platform.restart(server_id)
    kube_platform.wait_new_pod(server_id, victim)


def test_deleting_a_server_deletes_its_pod(kube_platform: KubePlatform) -> None:
    server_id = kube_platform.create_server()
    kube_platform.wait_state(server_id, "Ready")
    assert 1 == len(kube_platform.pods(server_id))
    status, _ = call(
        "DELETE", f"{kube_platform.api}/v1/servers/{server_id}", token=kube_platform.token
    )
    assert status in (200, 202, 204)
    wait_for(
        f"the pod of {server_id} gone", lambda: not kube_platform.pods(server_id), timeout_s=WAIT_S
    )
    wait_for(
        f"server {server_id} removed",
        lambda: kube_platform.server(server_id)["state"] == "HTTP 404",
        timeout_s=WAIT_S,
    )


def test_deleting_the_runtime_config_map_garbage_collects_its_pods(
    kube_platform: KubePlatform,
) -> None:
    server_id = kube_platform.create_server()
    kube_platform.wait_state(server_id, "Ready")
    (victim,) = kube_platform.pods(server_id)
    kube_platform.core.delete_namespaced_config_map(
        f"refplat-runtime-{NODE}", kube_platform.namespace, _request_timeout=10
    )
    _, pod = kube_platform.wait_new_pod(server_id, victim)
    owner = kube_platform.core.read_namespaced_config_map(
        f"refplat-runtime-{NODE}", kube_platform.namespace, _request_timeout=10
    )
    assert [owner.metadata.uid] == [o.uid for o in pod.metadata.owner_references]


def test_the_kube_lease_moves_when_its_holder_stops_renewing_and_the_epoch_grows(
    kube_cluster: KubeCluster, namespace: str, redis_url: str
) -> None:
    asyncio.run(_lease_handover(kube_cluster.kubeconfig, namespace, redis_url))


async def _lease_handover(kubeconfig: Path, namespace: str, redis_url: str) -> None:
    store = Store(connect(redis_url))
    api = kube_client(kubeconfig)
    try:
        a, b = (
            KubeLease(api=api, namespace=namespace, name="leader", holder=h, ttl_s=1.0, store=store)
            for h in ("a", "b")
        )
        assert (True, False) == (await a.tick(), await b.tick())
        first = a.term
        assert first is not None
        for _ in range(40):  # a stops renewing; b takes over one lease duration later
            if await b.tick():
                break
            await asyncio.sleep(0.1)
        second = b.term
        assert second is not None and second.epoch > first.epoch
        assert False is await a.tick()
        with pytest.raises(FencedError):  # a's writes are fenced in Redis by b's epoch
            await store.run("CTL_EXPIRE_SESSION", first.holder, first.epoch, "no-such-session")
        await b.release()
        assert True is await a.tick()  # a released Lease is free at once
        third = a.term
        assert third is not None and third.epoch > second.epoch
        lease = k8s.CoordinationV1Api(api).read_namespaced_lease("leader", namespace)
        assert ("a", third.epoch) == (lease.spec.holder_identity, lease.spec.lease_transitions)
    finally:
        api.close()
        await store.redis.aclose()


def test_the_pod_command_serves_server_list_ping(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "refplat", "gameserver", "--listen", f"127.0.0.1:{port}"]
    argv += ["--version", "1.20.4", "--server-id", "gs-pod"]
    with (tmp_path / "gameserver.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        game = JavaServer("127.0.0.1", port, timeout=2)
        reply = wait_for("a status reply", lambda: game.status(tries=1), timeout_s=WAIT_S)
        assert ("1.20.4", "refplat game server gs-pod") == (
            reply.version.name,
            reply.motd.to_plain(),
        )
    finally:
        stop_process(proc)
