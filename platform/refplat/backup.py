"""Backups of the platform state (every ``refplat:*`` key in Redis) and of the world files.

A backup is a directory ``<out>/<id>/`` (ids ``b-<UTC time>-<hex>`` sort by time) with:

- ``manifest.json``: ``{"format", "version", "id", "created_at", "seconds", "state",
  "world"}``; ``state`` is ``{"file", "keys", "bytes", "sha256"}`` (or null) and ``world``
  a list of :class:`refplat.worldbackup.WorldManifest` (empty without a data directory);
- ``state.jsonl.gz``: one JSON line per key, ``{"key", "pttl", "dump"}`` where ``dump`` is
  the base64 of Redis ``DUMP`` (type, value and encoding, exact) and ``pttl`` the remaining
  time to live in ms (-1: none). Keys are read with ``SCAN``; ``PTTL`` and ``DUMP`` of each
  batch run in one Lua script, atomically (the ``refplat:audit:*`` keys in a single batch, so
  the log, its head and its base stay consistent). A key written during the backup may or
  may not be in it; stop writers for a point-in-time copy;
- ``world/<node>--<server>.tar.gz``: each server's directory (see :mod:`refplat.worldbackup`).

A restore checks every SHA-256 first and refuses a Redis that already holds ``refplat:*``
keys (or a data directory that holds a backed-up server's files) unless ``force``, which
replaces them. Keys come back with ``RESTORE`` and their remaining TTL, counted from the
restore.
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import logging
import secrets
import shutil
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis

from refplat.redisconn import RedisSettings, connect_sync
from refplat.store import PREFIX
from refplat.worldbackup import (
    BackupError,
    CorruptBackupError,
    NotEmptyError,
    WorldManifest,
    check_file,
    pack_server,
    server_dirs,
    sha256_of,
    unpack_server,
    write_atomically,
)

log = logging.getLogger(__name__)

FORMAT = "refplat-backup"
VERSION = 1
MANIFEST = "manifest.json"
STATE_FILE = "state.jsonl.gz"
BATCH_KEYS = 1000
AUDIT_PREFIX = f"{PREFIX}audit:"


# One batch in one atomic step: PTTL and DUMP of each key (false: deleted since the SCAN).
DUMP_BATCH = """
local out = {}
for i, key in ipairs(KEYS) do
  out[2 * i - 1] = redis.call('PTTL', key)
  out[2 * i] = redis.call('DUMP', key)
end
return out
"""
RESTORE_BATCH = """
for i, key in ipairs(KEYS) do
  redis.call('RESTORE', key, ARGV[2 * i - 1], ARGV[2 * i], 'REPLACE')
end
return #KEYS
"""


def connect_bytes(target: str | RedisSettings) -> redis.Redis:
    """A blocking Redis client that keeps values as bytes (``DUMP`` payloads are binary).

    ``target`` is a URL, or settings naming one or sentinels and the master name (then the
    client asks a Sentinel for the current master).
    """
    return connect_sync(target, decode=False)


def new_backup_id() -> str:
    """A fresh id that sorts by creation time."""
    return time.strftime("b-%Y%m%dT%H%M%SZ-", time.gmtime()) + secrets.token_hex(3)


@dataclass(frozen=True)
class StateManifest:
    """The Redis part of a backup."""

    file: str
    keys: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The ``manifest.json`` of one backup."""

    id: str
    created_at: float
    seconds: float
    state: StateManifest | None
    world: tuple[WorldManifest, ...] = field(default=())

    @property
    def files(self) -> int:
        return sum(w.files for w in self.world)

    @property
    def bytes(self) -> int:
        return sum(w.bytes for w in self.world)

    def to_json(self) -> dict[str, Any]:
        state = self.state
        return {
            "format": FORMAT,
            "version": VERSION,
            "id": self.id,
            "created_at": self.created_at,
            "seconds": self.seconds,
            "state": None if state is None else dataclasses.asdict(state),
            "world": [w.to_json() for w in self.world],
        }

    def write(self, directory: Path) -> None:
        text = json.dumps(self.to_json(), indent=2, sort_keys=True).encode()
        write_atomically(directory / MANIFEST, lambda out: out.write(text))


def read_manifest(directory: Path) -> Manifest:
    """The manifest of the backup in ``directory``; :class:`BackupError` naming the file."""
    path = directory / MANIFEST
    if not directory.is_dir():
        raise BackupError(f"backup directory {directory} does not exist")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT or raw.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} version {VERSION} manifest")
        state = raw["state"]
        return Manifest(
            id=str(raw["id"]),
            created_at=float(raw["created_at"]),
            seconds=float(raw["seconds"]),
            state=None if state is None else StateManifest(**state),
            world=tuple(WorldManifest.from_json(w, source=str(path)) for w in raw["world"]),
        )
    except FileNotFoundError:
        raise BackupError(f"{directory} is not a backup: it has no {MANIFEST}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptBackupError(f"backup manifest {path} is unreadable: {exc}") from None


def list_backups(directory: Path) -> list[Manifest]:
    """Every backup in ``directory`` (itself one, or a folder of them), oldest first."""
    if (directory / MANIFEST).is_file():
        return [read_manifest(directory)]
    if not directory.is_dir():
        raise BackupError(f"backup directory {directory} does not exist")
    found = [read_manifest(p) for p in sorted(directory.iterdir()) if (p / MANIFEST).is_file()]
    return sorted(found, key=lambda m: (m.created_at, m.id))


def find_backup(directory: Path, backup_id: str | None = None) -> Path:
    """The backup directory to restore: ``directory`` itself, ``backup_id`` in it, or the newest."""
    if (directory / MANIFEST).is_file() and backup_id is None:
        return directory
    backups = list_backups(directory)
    if backup_id is not None:
        backups = [m for m in backups if m.id == backup_id]
    if not backups:
        which = f"backup {backup_id}" if backup_id else "no backup"
        raise BackupError(f"{directory} holds {which}; run `refplat backup list --from DIR`")
    return directory / backups[-1].id


# The platform state


def dump_state(client: redis.Redis, path: Path, *, batch_keys: int = BATCH_KEYS) -> StateManifest:
    """Write every ``refplat:*`` key (value and TTL) to ``path``."""
    names = sorted(set(client.scan_iter(match=f"{PREFIX}*", count=batch_keys)))
    audit = [n for n in names if n.startswith(AUDIT_PREFIX.encode())]
    rest = [n for n in names if not n.startswith(AUDIT_PREFIX.encode())]
    batches = [audit, *(rest[i : i + batch_keys] for i in range(0, len(rest), batch_keys))]
    count = 0

    def fill(stream: IO[bytes]) -> None:
        nonlocal count
        with gzip.GzipFile(fileobj=stream, mode="wb", mtime=0, compresslevel=6) as out:
            for batch in batches:
                for line in _dump_batch(client, batch):
                    out.write(line)
                    count += 1

    write_atomically(path, fill)
    return StateManifest(
        file=path.name, keys=count, bytes=path.stat().st_size, sha256=sha256_of(path)
    )


def _dump_batch(client: redis.Redis, names: list[bytes]) -> Iterator[bytes]:
    if not names:
        return
    replies = client.eval(DUMP_BATCH, len(names), *names)
    for name, pttl, payload in zip(names, replies[::2], replies[1::2], strict=True):
        if payload is None:  # deleted since the SCAN
            continue
        record = {
            "key": name.decode("utf-8", "surrogateescape"),
            "pttl": int(pttl),
            "dump": base64.b64encode(payload).decode("ascii"),
        }
        yield json.dumps(record, separators=(",", ":")).encode() + b"\n"


def state_keys(client: redis.Redis, *, limit: int | None = None) -> list[bytes]:
    """The ``refplat:*`` keys in Redis (at most ``limit`` of them)."""
    found: list[bytes] = []
    for name in client.scan_iter(match=f"{PREFIX}*", count=BATCH_KEYS):
        found.append(name)
        if limit is not None and len(found) >= limit:
            break
    return found


def restore_state(
    client: redis.Redis, directory: Path, state: StateManifest, *, batch_keys: int = BATCH_KEYS
) -> int:
    """Replace every ``refplat:*`` key by the backup's (checked first); return the key count.

    Every key of the backup is restored (``RESTORE ... REPLACE``) before any key the backup
    lacks is removed, so a restore that fails part way leaves the old keys it did not reach.
    """
    path = directory / state.file
    check_file(path, sha256=state.sha256)
    records = list(_read_state(path))
    if len(records) != state.keys:
        raise CorruptBackupError(f"backup file {path} holds {len(records)} keys, not {state.keys}")
    existing = state_keys(client)
    for i in range(0, len(records), batch_keys):
        batch = records[i : i + batch_keys]
        args: list[bytes | int] = []
        for _, pttl, payload in batch:
            args += [0 if pttl < 0 else max(pttl, 1), payload]  # 0: no expiry
        client.eval(RESTORE_BATCH, len(batch), *(name for name, _, _ in batch), *args)
    restored = {name for name, _, _ in records}
    stale = [name for name in existing if name not in restored]
    for i in range(0, len(stale), batch_keys):
        client.unlink(*stale[i : i + batch_keys])
    return len(records)


def _read_state(path: Path) -> Iterator[tuple[bytes, int, bytes]]:
    try:
        with gzip.open(path, "rb") as stream:
            for line in stream:
                record = json.loads(line)
                name = str(record["key"]).encode("utf-8", "surrogateescape")
                yield name, int(record["pttl"]), base64.b64decode(record["dump"], validate=True)
    except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError) as exc:
        raise CorruptBackupError(f"backup file {path} is unreadable: {exc}") from None


# A whole backup


@dataclass(frozen=True)
class BackupReport:
    """What a create or restore saved or put back, and how long it took."""

    id: str
    path: Path
    keys: int
    state_bytes: int
    servers: int
    files: int
    bytes: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "path": str(self.path), "seconds": round(self.seconds, 3)}


def create_backup(
    client: redis.Redis, *, out: Path, data_dir: Path | None, backup_id: str | None = None
) -> BackupReport:
    """Back up the Redis state, then the world files of every server under ``data_dir``."""
    started, created_at = time.monotonic(), time.time()
    if data_dir is not None and not data_dir.is_dir():
        raise BackupError(f"data directory {data_dir} does not exist; pass the api's --data-dir")
    client.ping()
    backup_id = backup_id or new_backup_id()
    directory = out / backup_id
    directory.mkdir(parents=True)
    try:
        state = dump_state(client, directory / STATE_FILE)
        world = _pack_all(client, data_dir.resolve(), directory) if data_dir else ()
        manifest = Manifest(
            id=backup_id,
            created_at=created_at,
            seconds=time.monotonic() - started,
            state=state,
            world=world,
        )
        manifest.write(directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)  # never leave half a backup behind
        raise
    log.info("backup %s written to %s", backup_id, directory)
    return _report(manifest, directory, seconds=time.monotonic() - started)


def _pack_all(client: redis.Redis, root: Path, directory: Path) -> tuple[WorldManifest, ...]:
    packed = []
    for node, server in server_dirs(root):
        current = client.hget(f"{PREFIX}server:{server}", "session")
        packed.append(
            pack_server(
                root=root,
                node=node,
                server=server,
                directory=directory,
                archive=f"world/{node}--{server}.tar.gz",
                current=current.decode() if isinstance(current, bytes) else current,
            )
        )
    return tuple(packed)


def restore_backup(
    client: redis.Redis, *, source: Path, data_dir: Path | None, force: bool
) -> BackupReport:
    """Restore the backup in ``source``: check it, refuse a non-empty target, put it back."""
    started = time.monotonic()
    manifest = read_manifest(source)
    if manifest.state is not None:
        check_file(source / manifest.state.file, sha256=manifest.state.sha256)
    for world in manifest.world:
        check_file(source / world.archive, sha256=world.sha256)
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
    _refuse_non_empty(client, manifest, data_dir, force=force)
    keys = 0 if manifest.state is None else restore_state(client, source, manifest.state)
    servers = manifest.world if data_dir is not None else ()  # no data dir: the state only
    for entry in servers:
        assert data_dir is not None
        unpack_server(directory=source, manifest=entry, root=data_dir.resolve(), force=force)
    restored = dataclasses.replace(manifest, world=servers)
    return _report(restored, source, seconds=time.monotonic() - started, keys=keys)


def _refuse_non_empty(
    client: redis.Redis, manifest: Manifest, data_dir: Path | None, *, force: bool
) -> None:
    if force:
        return
    if manifest.state is not None and state_keys(client, limit=1):
        raise NotEmptyError(
            "the target Redis already holds refplat:* keys; restore into an empty Redis "
            "or pass --force to replace them"
        )
    for world in manifest.world if data_dir else ():
        assert data_dir is not None
        server_dir = data_dir / world.node / world.server
        if server_dir.exists() and any(server_dir.iterdir()):
            raise NotEmptyError(
                f"{server_dir} already holds world files; restore into an empty data "
                "directory or pass --force to replace them"
            )


def _report(
    manifest: Manifest, path: Path, *, seconds: float, keys: int | None = None
) -> BackupReport:
    state = manifest.state
    return BackupReport(
        id=manifest.id,
        path=path,
        keys=(state.keys if state else 0) if keys is None else keys,
        state_bytes=state.bytes if state else 0,
        servers=len(manifest.world),
        files=manifest.files,
        bytes=manifest.bytes,
        seconds=seconds,
    )
