"""The backup endpoints of a game server: snapshot its world files, list and restore them.

- ``POST /v1/servers/{id}/backups`` (the server's tenant or the admin) archives the files of
  the server's current session into ``<data-dir>/backups/<server>/<backup id>/`` (a
  :mod:`refplat.backup` directory without Redis state);
- ``GET /v1/servers/{id}/backups`` lists them, oldest first;
- ``POST /v1/servers/{id}/backups/{backup_id}/restore`` writes a backup's files into the
  server's current Active session through the disk quota (:mod:`refplat.worldbackup`): a
  restore that would pass the quota answers 507 and changes nothing.

Each create and restore is audited. Without a data root the endpoints answer 501.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from refplat.audit import AuditAction
from refplat.backup import Manifest, list_backups, new_backup_id, read_manifest
from refplat.datadir import DataDir
from refplat.middleware import Caller, error
from refplat.model import GameServer
from refplat.quota import Quota
from refplat.store import Store
from refplat.worldbackup import (
    BACKUPS_DIR,
    BackupError,
    QuotaExceededError,
    pack_server,
    restore_into_session,
)

BACKUP_ID = re.compile(r"^b-\d{8}T\d{6}Z-[0-9a-f]{6}$")
ARCHIVE = "world.tar.gz"
CallerOf = Callable[[web.Request], Awaitable[Caller]]


class Audited(Protocol):
    """The api's audit hook: one event per successful mutation."""

    def __call__(
        self, tenant: str | None, action: AuditAction, object_id: str, **details: str
    ) -> Awaitable[None]: ...


class ServerBackups:
    """Request handlers of the backups of game servers."""

    def __init__(
        self,
        *,
        store: Store,
        data_dir: Path | None,
        quota_bytes: int,
        caller_of: CallerOf,
        audited: Audited,
    ) -> None:
        self._store = store
        self._quota = Quota(store=store, quota_bytes=quota_bytes)
        self._data = DataDir(data_dir) if data_dir else None
        self._caller_of = caller_of
        self._audited = audited

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the endpoints on ``router``."""
        router.add_post("/v1/servers/{id}/backups", self.create)
        router.add_get("/v1/servers/{id}/backups", self.list)
        router.add_post("/v1/servers/{id}/backups/{backup_id}/restore", self.restore)

    async def create(self, request: web.Request) -> web.Response:
        data = self._data_dir()
        caller, server = await self._visible_server(request)
        if server.session is None:
            raise error(409, f"server {server.id} has no session; its world files live in one")
        directory = await self._quota.directory(server.session)
        node = directory.split("/")[0] if directory else (server.node or "")
        target = data.root / BACKUPS_DIR / server.id / new_backup_id()
        manifest = await asyncio.to_thread(
            _snapshot, root=data.root, node=node, server=server, target=target
        )
        await self._audited(caller.tenant, AuditAction.BACKUP_CREATE, server.id, backup=manifest.id)
        return web.json_response(_backup_json(manifest), status=201)

    async def list(self, request: web.Request) -> web.Response:
        data = self._data_dir()
        _, server = await self._visible_server(request)
        directory = data.root / BACKUPS_DIR / server.id
        try:
            found = await asyncio.to_thread(list_backups, directory) if directory.is_dir() else []
        except BackupError as exc:
            raise error(409, str(exc)) from None
        return web.json_response({"items": [_backup_json(m) for m in found]})

    async def restore(self, request: web.Request) -> web.Response:
        data = self._data_dir()
        caller, server = await self._visible_server(request)
        backup_id = request.match_info["backup_id"]
        directory = data.root / BACKUPS_DIR / server.id / backup_id
        if not BACKUP_ID.match(backup_id) or not directory.is_dir():
            raise error(404, f"server {server.id} has no backup {backup_id}")
        started = time.monotonic()
        try:
            manifest = await asyncio.to_thread(read_manifest, directory)
            (world,) = manifest.world
            done = await restore_into_session(
                store=self._store, quota=self._quota, data=data, directory=directory, manifest=world
            )
        except QuotaExceededError as exc:
            raise error(
                507, str(exc), used_bytes=exc.used_bytes, quota_bytes=exc.quota_bytes
            ) from None
        except (BackupError, ValueError) as exc:
            raise error(409, f"backup {backup_id} cannot be restored: {exc}") from None
        details = {"backup": backup_id, "session": done.session}
        await self._audited(caller.tenant, AuditAction.BACKUP_RESTORE, server.id, **details)
        return web.json_response(
            {
                **details,
                "server": server.id,
                "files": done.files,
                "bytes": done.bytes,
                "used_bytes": done.used_bytes,
                "quota_bytes": self._quota.quota_bytes,
                "seconds": round(time.monotonic() - started, 3),
            }
        )

    # Steps

    def _data_dir(self) -> DataDir:
        if self._data is None:
            raise error(501, "world files are off; start the api with --data-dir")
        return self._data

    async def _visible_server(self, request: web.Request) -> tuple[Caller, GameServer]:
        caller = await self._caller_of(request)
        server = await self._store.get_server(request.match_info["id"])
        if server is None or not (caller.admin or server.tenant == caller.tenant):
            raise error(404, "no such server")
        return caller, server


def _snapshot(*, root: Path, node: str, server: GameServer, target: Path) -> Manifest:
    """Archive the files of the server's current session into the backup ``target``."""
    started, created_at = time.monotonic(), time.time()
    assert server.session is not None
    target.mkdir(parents=True)
    try:
        world = pack_server(
            root=root,
            node=node,
            server=server.id,
            directory=target,
            archive=ARCHIVE,
            sessions=[server.session],
            current=server.session,
        )
        manifest = Manifest(
            id=target.name,
            created_at=created_at,
            seconds=time.monotonic() - started,
            state=None,
            world=(world,),
        )
        manifest.write(target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return manifest


def _backup_json(manifest: Manifest) -> dict[str, Any]:
    (world,) = manifest.world or (None,)
    return {
        "id": manifest.id,
        "server": world.server if world else None,
        "session": world.source if world else None,
        "created_at": manifest.created_at,
        "files": manifest.files,
        "bytes": manifest.bytes,
        "sha256": world.sha256 if world else None,
    }
