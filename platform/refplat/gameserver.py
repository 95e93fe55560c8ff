"""One game server as its own process: the container of a kube runtime Pod runs this.

``refplat gameserver --listen 0.0.0.0:25565 --version 1.21 --server-id gs-...`` serves the
Minecraft Server List Ping protocol (see :mod:`refplat.slp`) on one port until SIGTERM, as the
node agent's listeners do; the Pod's readiness probe is a TCP connect to that port.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from refplat.agent import DEFAULT_PROTOCOL, MAX_PLAYERS, PROTOCOL_BY_VERSION
from refplat.runtime import HostPort
from refplat.slp import StatusInfo, start_listener

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GameServerProcess:
    """One game server listener for the life of the process."""

    server_id: str
    version: str
    listen: HostPort

    def status(self) -> StatusInfo:
        """What it answers to a status request."""
        return StatusInfo(
            version_name=self.version,
            protocol=PROTOCOL_BY_VERSION.get(self.version, DEFAULT_PROTOCOL),
            players_online=0,
            players_max=MAX_PLAYERS,
            description=f"refplat game server {self.server_id}",
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        listener = await start_listener(
            host=self.listen.host, port=self.listen.port, status=self.status
        )
        log.info("game server %s serving on %s:%d", self.server_id, *self._address())
        try:
            await stop.wait()
        finally:
            listener.close()
            await listener.wait_closed()

    def _address(self) -> tuple[str, int]:
        return self.listen.host, self.listen.port
