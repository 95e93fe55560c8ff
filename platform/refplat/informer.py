"""An informer: a cache of game servers kept fresh by a watch, not by re-reading everything.

Every script that changes a server marks its id in dirty sets (see ``mark_dirty`` in
:mod:`refplat.scripts`): ``refplat:servers:dirty`` for the controller and
``refplat:node:{name}:dirty`` for the agent of each node the server was or is on. A refresh
takes the dirty set (read and cleared in one transaction) and re-reads only those servers;
every ``full_every_s``, and after :meth:`ServerInformer.invalidate`, it lists the whole index
instead (the dirty set is cleared first, so no change falls between the two), so a missed
mark costs a delay, never a stale cache for good.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from refplat.model import GameServer
from refplat.store import PREFIX, Store

CONTROLLER_DIRTY = f"{PREFIX}servers:dirty"
ALL_SERVERS = f"{PREFIX}servers"


def node_dirty(node: str) -> str:
    """The dirty set of one node's agent."""
    return f"{PREFIX}node:{node}:dirty"


def node_servers(node: str) -> str:
    """The index of the servers assigned to one node."""
    return f"{PREFIX}node:{node}:servers"


class ServerInformer:
    """The servers of one index (all, or one node's), as last read."""

    def __init__(
        self,
        store: Store,
        *,
        dirty_key: str,
        index_key: str,
        belongs: Callable[[GameServer], bool],
        full_every_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._dirty_key = dirty_key
        self._index_key = index_key
        self._belongs = belongs
        self._full_every_s = full_every_s
        self._clock = clock
        self._next_full = 0.0
        self.servers: dict[str, GameServer] = {}

    def invalidate(self) -> None:
        """List everything at the next refresh (after an error, or a new leadership term)."""
        self._next_full = 0.0

    async def refresh(self) -> set[str]:
        """Bring the cache up to date; return the ids that were (re)read."""
        now = self._clock()
        if now >= self._next_full:
            await self._store.take_set(self._dirty_key)
            listed = await self._store.servers_in(self._index_key)
            self.servers = {s.id: s for s in listed if self._belongs(s)}
            self._next_full = now + self._full_every_s
            return set(self.servers)
        changed = await self._store.take_set(self._dirty_key)
        for server_id, server in (await self._store.servers_by_id(changed)).items():
            if server is not None and self._belongs(server):
                self.servers[server_id] = server
            else:
                self.servers.pop(server_id, None)
        return set(changed)


def node_informer(store: Store, node: str, *, full_every_s: float) -> ServerInformer:
    """The servers assigned to ``node``: what its agent (or kube runtime) converges."""
    return ServerInformer(
        store,
        dirty_key=node_dirty(node),
        index_key=node_servers(node),
        belongs=lambda server: server.node == node,
        full_every_s=full_every_s,
    )
