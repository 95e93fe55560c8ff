"""The world-file endpoints of a session: put, get and delete files, read the disk usage.

``PUT /v1/sessions/{id}/files/{path}`` (body = the bytes, ``Content-Length`` required)
reserves the growth in the session's quota (:mod:`refplat.quota`), writes the file under
the data root (:mod:`refplat.datadir`) and commits the new size; any failure refunds the
reservation. Only the tenant of an Active session writes or deletes; the tenant or the
admin reads. Without a data root (no ``--data-dir``) the file endpoints answer 501.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from refplat.datadir import DataDir, PathError, valid_path
from refplat.metrics import ApiMetrics
from refplat.middleware import Caller, error
from refplat.model import SessionState
from refplat.quota import DELETE, Quota, Reservation
from refplat.store import Store

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
CallerOf = Callable[[web.Request], Awaitable[Caller]]


class WorldFiles:
    """Request handlers of the world files and usage of sessions."""

    def __init__(
        self,
        *,
        store: Store,
        quota: Quota,
        data: DataDir | None,
        caller_of: CallerOf,
        metrics: ApiMetrics,
    ) -> None:
        self._store = store
        self._quota = quota
        self._data = data
        self._caller_of = caller_of
        self._metrics = metrics

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the endpoints on ``router``."""
        router.add_get("/v1/sessions/{id}/usage", self.usage)
        router.add_put("/v1/sessions/{id}/files/{path:.+}", self.put_file)
        router.add_get("/v1/sessions/{id}/files/{path:.+}", self.get_file)
        router.add_delete("/v1/sessions/{id}/files/{path:.+}", self.delete_file)

    async def usage(self, request: web.Request) -> web.Response:
        session = await self._visible_session(request)
        used = await self._quota.usage(session)
        return web.json_response({"used_bytes": used, "quota_bytes": self._quota.quota_bytes})

    async def put_file(self, request: web.Request) -> web.Response:
        data, session, tenant, path = await self._writable(request)
        size = _declared_size(request)
        reservation = await self._reserve(session=session, tenant=tenant, path=path, size=size)
        try:
            chunks = request.content.iter_chunked(CHUNK_BYTES)
            await data.write(directory=reservation.directory, path=path, size=size, chunks=chunks)
        except BaseException as exc:
            await self._quota.abort(session=session, path=path)
            if isinstance(exc, NotADirectoryError | IsADirectoryError | FileExistsError):
                raise error(
                    409, f"{path} clashes with a directory or file of the session"
                ) from None
            raise
        await self._committed(session=session, path=path, size=size, reservation=reservation)
        used = await self._quota.usage(session)
        body = {"path": path, "size": size, "used_bytes": used}
        return web.json_response({**body, "quota_bytes": self._quota.quota_bytes})

    async def get_file(self, request: web.Request) -> web.Response:
        data = self._data_dir()
        session, path = await self._visible_session(request), _path(request)
        directory = await self._quota.directory(session)
        size = await self._quota.stored_size(session=session, path=path)
        if directory is None or size is None:
            raise error(404, f"session {session} has no file {path}")
        try:
            body = await data.read(directory=directory, path=path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise error(404, f"session {session} has no file {path}") from None
        return web.Response(body=body, content_type="application/octet-stream")

    async def delete_file(self, request: web.Request) -> web.Response:
        data, session, tenant, path = await self._writable(request)
        reservation = await self._reserve(session=session, tenant=tenant, path=path, size=DELETE)
        try:
            await data.remove(directory=reservation.directory, path=path)
        except BaseException:
            await self._quota.abort(session=session, path=path)
            raise
        await self._committed(session=session, path=path, size=DELETE, reservation=reservation)
        used = await self._quota.usage(session)
        return web.json_response({"used_bytes": used, "quota_bytes": self._quota.quota_bytes})

    async def sweep(self) -> int:
        """Delete the directories of ended sessions; return how many were deleted."""
        if self._data is None:
            return 0
        return await sweep_ended(quota=self._quota, data=self._data)

    async def sweep_session(self, session: str) -> bool:
        """Delete the directory of one ended session, if it wrote files (the controller sweeps
        what this misses); True when something was deleted."""
        if self._data is None:
            return False
        directory = await self._quota.directory(session)
        if directory is None:
            return False
        await self._data.remove_session(directory)
        return await self._quota.forget(session)

    # Steps

    def _data_dir(self) -> DataDir:
        if self._data is None:
            raise error(501, "world files are off; start the api with --data-dir")
        return self._data

    async def _visible_session(self, request: web.Request) -> str:
        caller = await self._caller_of(request)
        session = await self._store.get_session(request.match_info["id"])
        if session is None or not (caller.admin or session.tenant == caller.tenant):
            raise error(404, "no such session")
        return session.id

    async def _writable(self, request: web.Request) -> tuple[DataDir, str, str, str]:
        caller = await self._caller_of(request)
        if caller.tenant is None:
            raise error(403, "only the session's tenant writes its files, not the admin")
        data, path = self._data_dir(), _path(request)
        session = await self._store.get_session(request.match_info["id"])
        if session is None or session.tenant != caller.tenant:
            raise error(404, "no such session")
        if session.state is not SessionState.ACTIVE:
            raise error(409, f"session {session.id} is {session.state.value}, not Active")
        return data, session.id, session.tenant, path

    async def _reserve(self, *, session: str, tenant: str, path: str, size: int) -> Reservation:
        reservation = await self._quota.begin(session=session, tenant=tenant, path=path, size=size)
        if reservation.outcome == "full":
            self._metrics.quota_rejections.inc()
            raise error(
                507,
                f"session {session} would pass its disk quota; delete files first",
                used_bytes=reservation.used_bytes,
                quota_bytes=self._quota.quota_bytes,
            )
        if reservation.outcome == "missing":
            raise error(404, f"session {session} has no file {path}")
        if reservation.outcome == "busy":
            raise error(409, f"another write of {path} is in flight; retry")
        if reservation.outcome != "ok":
            raise error(409, f"session {session} is no longer Active")
        return reservation

    async def _committed(
        self, *, session: str, path: str, size: int, reservation: Reservation
    ) -> None:
        if await self._quota.commit(session=session, path=path, size=size):
            return
        assert self._data is not None
        await self._data.remove_session(reservation.directory)
        await self._quota.forget(session)
        raise error(409, f"session {session} ended during the write; its files are deleted")


async def sweep_ended(*, quota: Quota, data: DataDir) -> int:
    """Delete the directory of every ended session that had files, then its usage."""
    swept = 0
    for session in await quota.ended():
        directory = await quota.directory(session)
        if directory is not None:
            await data.remove_session(directory)
        if await quota.forget(session):
            swept += 1
            log.info("deleted the world files of ended session %s", session)
    return swept


def _path(request: web.Request) -> str:
    try:
        return valid_path(request.match_info["path"])
    except PathError as exc:
        raise error(422, "invalid path", fields={"path": str(exc)}) from None


def _declared_size(request: web.Request) -> int:
    size = request.content_length
    if size is None:
        raise error(411, "send the file with a Content-Length header")
    if size > MAX_FILE_BYTES:
        raise error(413, f"a world file is at most {MAX_FILE_BYTES} bytes")
    return size
