"""One pass of the kube runtime over many servers at once keeps its Redis calls bounded.

Unbounded, a pass over 1,000 servers whose Pods turned Ready together ran 1,000 Lua calls at
once and exhausted the Redis client's connection pool (benchmarks/kube_scale.py). The store and
the server informer are fakes at the runtime's own seams; the pass itself is the real one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes import client as k8s

from refplat.kubepod import PodSpecSettings
from refplat.kuberuntime import MAX_STEPS_IN_FLIGHT, KubeRuntime, KubeRuntimeSettings
from refplat.kubewatch import PodView
from refplat.model import GameServer, GameServerState
from refplat.runtime import HostPort

NODE = "kube-pool"
SERVERS = 300


class CountingStore:
    """Records how many script calls are in flight at once; every POD_READY succeeds."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.ready: list[str] = []

    async def run_source(self, name: str, _source: str, *args: Any) -> int:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(0)  # a round trip: let every other step start if it may
        await asyncio.sleep(0)
        self.in_flight -= 1
        if name == "POD_READY":
            self.ready.append(str(args[0]))
        return 1

    async def run(self, name: str, *args: Any) -> int:
        return await self.run_source(name, "", *args)


class FixedInformer:
    def __init__(self, servers: dict[str, GameServer]) -> None:
        self.servers = servers

    async def refresh(self) -> None:
        return None

    def invalidate(self) -> None:
        return None


def starting(index: int) -> GameServer:
    return GameServer(
        id=f"gs-{index}",
        tenant="t",
        region="local",
        version="1.20.4",
        state=GameServerState.STARTING,
        node=NODE,
        address=None,
        port=None,
        session=None,
    )


def serving_pod(server_id: str) -> PodView:
    return PodView(
        name=f"{server_id}-pod",
        server_id=server_id,
        phase="Running",
        ready=True,
        ip="10.0.0.1",
        deleting=False,
        created=0.0,
    )


def test_a_pass_over_many_servers_turning_ready_keeps_redis_calls_bounded_and_readies_all() -> None:
    store = CountingStore()
    settings = KubeRuntimeSettings(
        node=NODE, namespace="ns", listen=HostPort("127.0.0.1", 0), pod=PodSpecSettings()
    )
    runtime = KubeRuntime(store=store, api=k8s.ApiClient(), settings=settings)  # type: ignore[arg-type]
    servers = {s.id: s for s in (starting(i) for i in range(SERVERS))}
    runtime._informer = FixedInformer(servers)  # type: ignore[assignment]
    runtime.pods = {p.name: p for p in (serving_pod(sid) for sid in servers)}
    runtime._synced = True

    asyncio.run(runtime.sync())

    assert (sorted(servers), MAX_STEPS_IN_FLIGHT) == (sorted(store.ready), store.most)
