"""The resource model: game servers, sessions and nodes, as stored in Redis and served as JSON."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JsonObject = dict[str, Any]


class GameServerState(enum.StrEnum):
    """Lifecycle of a game server (Agones' GameServer, trimmed, plus Stopped for power actions).

    The allowed transitions and their owners are in :mod:`refplat.states`.
    """

    CREATING = "Creating"
    STARTING = "Starting"
    READY = "Ready"
    ALLOCATED = "Allocated"
    STOPPED = "Stopped"
    SHUTDOWN = "Shutdown"
    UNHEALTHY = "Unhealthy"
    ERROR = "Error"


class SessionState(enum.StrEnum):
    """Lifecycle of a session (one allocation of one game server).

    Allocation and ending are single scripts, so Pending and Ending are not used today.
    """

    PENDING = "Pending"
    ACTIVE = "Active"
    ENDING = "Ending"
    ENDED = "Ended"


class EndReason(enum.StrEnum):
    """Why a session ended."""

    COMPLETED = "Completed"
    EXPIRED = "Expired"
    QUOTA_EXCEEDED = "QuotaExceeded"
    SERVER_LOST = "ServerLost"
    EVICTED = "Evicted"


class NodeState(enum.StrEnum):
    """Whether the controller still hears a node's heartbeat."""

    LIVE = "Live"
    LOST = "Lost"


def _opt_str(raw: Mapping[str, str], key: str) -> str | None:
    value = raw.get(key, "")
    return value or None


def _opt_int(raw: Mapping[str, str], key: str) -> int | None:
    value = raw.get(key, "")
    return int(value) if value else None


DEFAULT_MEMORY_MIB = 1024
DEFAULT_DISK_QUOTA_MIB = 10240


@dataclass(frozen=True)
class GameServer:
    """One game server: its size, where it runs and which session holds it.

    ``memory_mib`` and ``disk_quota_mib`` are stored and returned (not enforced on the local
    runtime); ``restart`` is the token of a restart in place the agent has not done yet.
    """

    id: str
    tenant: str
    region: str
    version: str
    state: GameServerState
    node: str | None
    address: str | None
    port: int | None
    session: str | None
    memory_mib: int = DEFAULT_MEMORY_MIB
    disk_quota_mib: int = DEFAULT_DISK_QUOTA_MIB
    restart: str | None = None
    lost: str | None = None  # why an Unhealthy server's Pod is gone: the controller replaces it

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> GameServer:
        """Build from a Redis hash (empty strings mean "not set")."""
        return cls(
            id=raw["id"],
            tenant=raw["tenant"],
            region=raw["region"],
            version=raw["version"],
            state=GameServerState(raw["state"]),
            node=_opt_str(raw, "node"),
            address=_opt_str(raw, "address"),
            port=_opt_int(raw, "port"),
            session=_opt_str(raw, "session"),
            memory_mib=_opt_int(raw, "memory_mib") or DEFAULT_MEMORY_MIB,
            disk_quota_mib=_opt_int(raw, "disk_quota_mib") or DEFAULT_DISK_QUOTA_MIB,
            restart=_opt_str(raw, "restart"),
            lost=_opt_str(raw, "lost"),
        )

    def to_json(self) -> JsonObject:
        """The API representation."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "region": self.region,
            "version": self.version,
            "state": self.state.value,
            "node": self.node,
            "address": self.address,
            "port": self.port,
            "session": self.session,
            "memory_mib": self.memory_mib,
            "disk_quota_mib": self.disk_quota_mib,
            "restarting": self.restart is not None,
            "lost": self.lost if self.state is GameServerState.UNHEALTHY else None,
        }


@dataclass(frozen=True)
class Session:
    """One allocation of a game server to a tenant's players."""

    id: str
    tenant: str
    server_id: str
    address: str | None
    port: int | None
    state: SessionState
    reason: EndReason | None
    created_at: float
    expires_at: float
    replacements: int = 0  # times it moved to another server after losing its node

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> Session:
        """Build from a Redis hash."""
        reason = raw.get("reason", "")
        return cls(
            id=raw["id"],
            tenant=raw["tenant"],
            server_id=raw["server_id"],
            address=_opt_str(raw, "address"),
            port=_opt_int(raw, "port"),
            state=SessionState(raw["state"]),
            reason=EndReason(reason) if reason else None,
            created_at=float(raw["created_at"]),
            expires_at=float(raw["expires_at"]),
            replacements=int(raw.get("replacements") or 0),
        )

    def to_json(self) -> JsonObject:
        """The API representation (instants as float POSIX seconds)."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "server_id": self.server_id,
            "address": self.address,
            "port": self.port,
            "state": self.state.value,
            "reason": self.reason.value if self.reason else None,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "replacements": self.replacements,
        }


@dataclass(frozen=True)
class Node:
    """A host running an agent, as last reported by its heartbeat."""

    name: str
    address: str
    heartbeat_at: float
    state: NodeState

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> Node:
        """Build from a Redis hash."""
        return cls(
            name=raw["name"],
            address=raw["address"],
            heartbeat_at=float(raw["heartbeat_at"]),
            state=NodeState(raw["state"]),
        )


@dataclass(frozen=True)
class Tenant:
    """A customer of the platform."""

    id: str
    name: str
