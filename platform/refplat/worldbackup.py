"""World-data archives: one server's directory as a tar.gz with a manifest, and its restores.

An archive holds ``<session>/<path>`` entries (regular files only) of one server directory
``<data-dir>/<node>/<server>``: every session of it (``pack_server``, the CLI's backups) or
only its current one (the api's snapshots). Its :class:`WorldManifest` records the server,
node, session ids, file count, bytes (the sum of the file sizes) and the SHA-256 of the
archive file; every read checks that hash first, so a corrupted archive is refused, naming
the file, before anything is written.

Two restores:

- :func:`unpack_server` puts the session directories back where they were: disaster recovery
  beside a Redis restored from the same backup, whose quota hashes already count the files;
- :func:`restore_into_session` writes the files of the archive's ``source`` session into the
  server's current Active session through :mod:`refplat.quota`: the growth of every file is
  reserved first, so a restore that would pass the quota is refused (and its reservations
  refunded) before a byte is written; the usage stays exact on every path.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import shutil
import tarfile
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypedDict

from refplat.datadir import COMPONENT, DataDir, PathError, valid_path
from refplat.model import SessionState
from refplat.quota import Quota
from refplat.store import Store

log = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024
BACKUPS_DIR = "backups"


class BackupError(RuntimeError):
    """A backup could not be written, read or restored; the message says why and what next."""


class CorruptBackupError(BackupError):
    """A backup file is missing, unreadable or does not match its manifest."""


class NotEmptyError(BackupError):
    """The restore target already holds data (pass ``--force`` to replace it)."""


class RestoreConflictError(BackupError):
    """The server cannot take the restore now (no Active session, a write in flight)."""


class QuotaExceededError(BackupError):
    """The restore would pass the session's disk quota; nothing was written."""

    def __init__(self, message: str, *, used_bytes: int, quota_bytes: int) -> None:
        super().__init__(message)
        self.used_bytes = used_bytes
        self.quota_bytes = quota_bytes


class WorldJson(TypedDict):
    """The JSON form of :class:`WorldManifest`."""

    server: str
    node: str
    sessions: list[str]
    source: str | None
    files: int
    bytes: int
    archive: str
    archive_bytes: int
    sha256: str


@dataclass(frozen=True)
class WorldManifest:
    """What one world archive holds; ``archive`` is relative to the backup directory."""

    server: str
    node: str
    sessions: tuple[str, ...]
    source: str | None
    files: int
    bytes: int
    archive: str
    archive_bytes: int
    sha256: str

    def to_json(self) -> WorldJson:
        return {
            "server": self.server,
            "node": self.node,
            "sessions": list(self.sessions),
            "source": self.source,
            "files": self.files,
            "bytes": self.bytes,
            "archive": self.archive,
            "archive_bytes": self.archive_bytes,
            "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, raw: Any, *, source: str) -> WorldManifest:
        """Parse one entry of a manifest; :class:`CorruptBackupError` naming ``source``."""
        try:
            manifest = cls(
                server=_component(raw["server"]),
                node=_component(raw["node"]),
                sessions=tuple(_component(s) for s in raw["sessions"]),
                source=None if raw["source"] is None else _component(raw["source"]),
                files=int(raw["files"]),
                bytes=int(raw["bytes"]),
                archive=str(raw["archive"]),
                archive_bytes=int(raw["archive_bytes"]),
                sha256=str(raw["sha256"]),
            )
            valid_path(manifest.archive)
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptBackupError(f"{source} has an invalid world entry: {exc}") from None
        return manifest


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path: Path, *, sha256: str) -> None:
    """Raise :class:`CorruptBackupError` unless ``path`` exists with this SHA-256."""
    try:
        actual = sha256_of(path)
    except OSError as exc:
        raise CorruptBackupError(f"backup file {path} cannot be read: {exc}") from None
    if actual != sha256:
        raise CorruptBackupError(
            f"backup file {path} is corrupt: its SHA-256 is {actual}, the manifest says "
            f"{sha256}; restore from another backup"
        )


def write_atomically(path: Path, fill: Callable[[IO[bytes]], object]) -> None:
    """Create ``path`` by ``fill(stream)`` into a temporary file, fsync and rename it."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("xb") as stream:
            fill(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def server_dirs(root: Path) -> list[tuple[str, str]]:
    """``(node, server)`` of every server directory under a data root (not ``backups/``)."""
    found = []
    for node in sorted(p for p in root.iterdir() if p.is_dir()):
        if node.name == BACKUPS_DIR or not COMPONENT.match(node.name):
            continue
        found += [(node.name, s.name) for s in sorted(node.iterdir()) if s.is_dir()]
    return found


def pack_server(
    *,
    root: Path,
    node: str,
    server: str,
    directory: Path,
    archive: str,
    sessions: list[str] | None = None,
    current: str | None = None,
) -> WorldManifest:
    """Archive ``<root>/<node>/<server>`` (only ``sessions`` when given) to ``directory/archive``.

    ``source`` (the session a restore into a live session takes its files from) is
    ``current`` when it has files, else the session with the newest file.
    """
    server_dir, out = root / node / server, directory / valid_path(archive)
    files = list(_world_files(server_dir, sessions))
    counts = {"files": 0, "bytes": 0}
    newest: dict[str, float] = {}

    def fill(stream: IO[bytes]) -> None:
        with tarfile.open(fileobj=stream, mode="w:gz") as tar:
            for session, rel, path in files:
                try:
                    opened = path.open("rb")
                except FileNotFoundError:
                    continue  # deleted since it was listed
                with opened as source:
                    stat = os.fstat(source.fileno())
                    info = tarfile.TarInfo(f"{session}/{rel}")
                    info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), 0o644
                    tar.addfile(info, source)
                counts["files"] += 1
                counts["bytes"] += stat.st_size
                newest[session] = max(newest.get(session, 0.0), stat.st_mtime)

    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, fill)
    found = tuple(sorted(newest))
    source = current if current in newest else max(newest, key=newest.__getitem__, default=None)
    return WorldManifest(
        server=server,
        node=node,
        sessions=found,
        source=source,
        files=counts["files"],
        bytes=counts["bytes"],
        archive=archive,
        archive_bytes=out.stat().st_size,
        sha256=sha256_of(out),
    )


def _world_files(server_dir: Path, sessions: list[str] | None) -> Iterator[tuple[str, str, Path]]:
    if not server_dir.is_dir():
        return
    for session_dir in sorted(p for p in server_dir.iterdir() if p.is_dir()):
        if sessions is not None and session_dir.name not in sessions:
            continue
        for path in sorted(session_dir.rglob("*")):
            rel = path.relative_to(session_dir).as_posix()
            if path.is_file() and not path.is_symlink() and _is_world_path(rel):
                yield session_dir.name, rel, path


def _is_world_path(rel: str) -> bool:
    try:
        valid_path(rel)
    except PathError:
        return False  # an in-flight temporary file (".name.hex.tmp") or a stranger's file
    return True


def _component(value: Any) -> str:
    text = str(value)
    if not COMPONENT.match(text):
        raise ValueError(f"{text!r} is not a valid id")
    return text


@dataclass(frozen=True)
class Member:
    """One file of an archive."""

    session: str
    path: str
    size: int


def members(directory: Path, manifest: WorldManifest) -> list[Member]:
    """The files of a checked archive (hash first, then every entry's name and type)."""
    archive = directory / manifest.archive
    check_file(archive, sha256=manifest.sha256)
    found: list[Member] = []
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for info in tar:
                found.append(_member(info, archive=archive))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CorruptBackupError(f"backup file {archive} is not a readable tar.gz: {exc}") from None
    names = [(m.session, m.path) for m in found]
    if len(set(names)) != len(names) or len(found) != manifest.files:
        raise CorruptBackupError(f"backup file {archive} does not match its manifest")
    return found


def _member(info: tarfile.TarInfo, *, archive: Path) -> Member:
    session, _, path = info.name.partition("/")
    try:
        valid_path(path)
        _component(session)
    except ValueError:
        raise CorruptBackupError(f"{archive} holds an unsafe entry {info.name!r}") from None
    if not info.isreg():
        raise CorruptBackupError(f"{archive} holds {info.name!r}, which is not a regular file")
    return Member(session=session, path=path, size=info.size)


def unpack_server(
    *, directory: Path, manifest: WorldManifest, root: Path, force: bool
) -> tuple[int, int]:
    """Put the archived sessions back under ``<root>/<node>/<server>``; (files, bytes).

    Refuses (:class:`NotEmptyError`) a server directory that already holds files unless
    ``force``, which deletes it first.
    """
    members(directory, manifest)
    server_dir = root / manifest.node / manifest.server
    if server_dir.exists() and any(server_dir.iterdir()):
        if not force:
            raise NotEmptyError(
                f"{server_dir} already holds world files; restore into an empty data "
                "directory or pass --force to replace them"
            )
        shutil.rmtree(server_dir)
    files = size = 0
    with tarfile.open(directory / manifest.archive, mode="r:gz") as tar:
        for info in tar:
            member = _member(info, archive=directory / manifest.archive)
            stream = tar.extractfile(info)
            assert stream is not None
            target = server_dir / member.session / member.path
            target.parent.mkdir(parents=True, exist_ok=True)
            with stream:
                write_atomically(target, functools.partial(_copy, stream))
            files, size = files + 1, size + member.size
    return files, size


def _copy(source: IO[bytes], out: IO[bytes]) -> None:
    shutil.copyfileobj(source, out, CHUNK_BYTES)


@dataclass(frozen=True)
class SessionRestore:
    """What :func:`restore_into_session` wrote."""

    session: str
    files: int
    bytes: int
    used_bytes: int


async def restore_into_session(
    *, store: Store, quota: Quota, data: DataDir, directory: Path, manifest: WorldManifest
) -> SessionRestore:
    """Write the archive's ``source`` session files into the server's current session."""
    session, tenant = await _active_session(store, manifest.server)
    listed = await asyncio.to_thread(members, directory, manifest)
    wanted = [m for m in listed if m.session == manifest.source]
    target = await _reserve_all(quota, session=session, tenant=tenant, files=wanted)
    written: list[Member] = []
    try:
        async with contextlib.aclosing(_contents(directory / manifest.archive, wanted)) as files:
            async for member, chunks in files:
                await data.write(
                    directory=target, path=member.path, size=member.size, chunks=chunks
                )
                written.append(member)
    finally:
        for member in wanted[len(written) :]:
            await quota.abort(session=session, path=member.path)
        ended = False
        for member in written:
            ok = await quota.commit(session=session, path=member.path, size=member.size)
            ended = ended or not ok
        if ended:
            await data.remove_session(target)
            await quota.forget(session)
    if ended:
        raise RestoreConflictError(f"session {session} ended during the restore; retry")
    used = await quota.usage(session)
    total = sum(m.size for m in wanted)
    return SessionRestore(session=session, files=len(wanted), bytes=total, used_bytes=used)


async def _active_session(store: Store, server_id: str) -> tuple[str, str]:
    server = await store.get_server(server_id)
    session = await store.get_session(server.session) if server and server.session else None
    if session is None or session.state is not SessionState.ACTIVE:
        raise RestoreConflictError(
            f"server {server_id} has no Active session to restore into; allocate one first"
        )
    return session.id, session.tenant


async def _reserve_all(quota: Quota, *, session: str, tenant: str, files: list[Member]) -> str:
    """Reserve every file's growth; on any refusal refund them all and raise."""
    done: list[Member] = []
    directory = ""
    try:
        for member in files:
            reservation = await quota.begin(
                session=session, tenant=tenant, path=member.path, size=member.size
            )
            if reservation.outcome != "ok":
                raise _refusal(reservation.outcome, session, member, reservation.used_bytes, quota)
            done.append(member)
            directory = reservation.directory
    except BaseException:
        for member in done:
            await quota.abort(session=session, path=member.path)
        raise
    return directory


def _refusal(outcome: str, session: str, member: Member, used: int, quota: Quota) -> BackupError:
    if outcome == "full":
        return QuotaExceededError(
            f"restoring into session {session} would pass its disk quota of "
            f"{quota.quota_bytes} bytes ({used} used); delete files first",
            used_bytes=used,
            quota_bytes=quota.quota_bytes,
        )
    if outcome == "busy":
        return RestoreConflictError(f"a write of {member.path} is in flight; retry")
    return RestoreConflictError(f"session {session} is no longer Active")


async def _contents(
    archive: Path, wanted: list[Member]
) -> AsyncGenerator[tuple[Member, AsyncIterator[bytes]], None]:
    """Each wanted member with an async iterator over its bytes, in archive order."""
    by_name = {f"{m.session}/{m.path}": m for m in wanted}
    tar = await asyncio.to_thread(tarfile.open, archive, "r:gz")
    try:
        while (info := await asyncio.to_thread(tar.next)) is not None:
            member = by_name.get(info.name)
            if member is None:
                continue
            stream = tar.extractfile(info)
            assert stream is not None
            yield member, _chunks(stream)
    finally:
        tar.close()


async def _chunks(stream: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(stream.read, CHUNK_BYTES):
        yield chunk
