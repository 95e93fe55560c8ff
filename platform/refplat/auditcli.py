"""``refplat audit keygen|archive|verify``: one-shot commands over the audit log.

- ``keygen --out FILE [--key-id ID]`` creates the key file (mode 0600) or, when it exists,
  appends a new key that becomes current (rotation); the file is replaced atomically, so a
  running api or controller re-reads either the old or the new file, never half of one.
- ``archive --redis-url URL --key-file F --out DIR`` moves the Redis list into a segment.
  (Instead of ``--redis-url``: ``--redis-sentinel HOST:PORT --redis-master NAME``.)
- ``verify --redis-url URL --key-file F [--archive DIR]`` prints one line per problem and
  exits 1, or prints a summary and exits 0 when the log is intact.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import redis

from refplat.audit import KeyRing, new_key_line
from refplat.auditarchive import ArchiveError, archive, verify_log
from refplat.redisconn import add_redis_arguments, connect_sync, redis_settings


def add_audit_parser(sub: Any) -> None:
    """Add the ``audit`` subcommand and its own subcommands to ``sub``."""
    audit = sub.add_parser("audit", help="manage and verify the audit log")
    commands = audit.add_subparsers(dest="audit_command", required=True)
    keygen = commands.add_parser("keygen", help="create a key file or add a new current key")
    keygen.add_argument("--out", required=True, type=Path)
    keygen.add_argument("--key-id", default=None)
    arch = commands.add_parser("archive", help="move the Redis log into a compressed segment")
    add_redis_arguments(arch, wait=False)
    arch.add_argument("--key-file", required=True, type=Path)
    arch.add_argument("--out", required=True, type=Path)
    check = commands.add_parser("verify", help="decrypt and re-chain every audit record")
    add_redis_arguments(check, wait=False)
    check.add_argument("--key-file", required=True, type=Path)
    check.add_argument("--archive", default=None, type=Path)


def run_audit(args: argparse.Namespace) -> int:
    """Run one audit command; 0 on success, 1 when the log is not intact, 2 on errors."""
    try:
        if args.audit_command == "keygen":
            return _keygen(args.out, key_id=args.key_id)
        keys = KeyRing.load(args.key_file)
        client = connect_sync(redis_settings(args))
        try:
            if args.audit_command == "archive":
                return _archive(client, keys=keys, directory=args.out)
            return _verify(client, keys=keys, archive_dir=args.archive)
        finally:
            client.close()
    except ArchiveError as exc:
        print(f"audit archive failed: {exc}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"audit {args.audit_command} failed: {exc}", file=sys.stderr)
        return 2


def _keygen(path: Path, *, key_id: str | None) -> int:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    existing = KeyRing.parse(text, source=str(path)).keys if text.strip() else {}
    key_id = key_id or f"k{len(existing) + 1}"
    line = new_key_line(key_id=key_id)
    KeyRing.parse(f"{text}\n{line}\n", source=str(path))  # rejects a repeated key id
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(f"{text.rstrip()}\n{line}\n".lstrip("\n"))
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    print(f"audit key {key_id} written to {path}; it is now the current key")
    return 0


def _archive(client: redis.Redis, *, keys: KeyRing, directory: Path) -> int:
    path, count = archive(client, keys=keys, directory=directory)
    if path is None:
        print("the Redis audit log is empty; nothing to archive")
    else:
        print(f"archived {count} records to {path}")
    return 0


def _verify(client: redis.Redis, *, keys: KeyRing, archive_dir: Path | None) -> int:
    report = verify_log(client, keys=keys, archive=archive_dir)
    for problem in report.problems:
        print(problem.line())
    if not report.intact:
        summary = f"{len(report.problems)} problem(s) in {report.records} records"
        print(f"audit log NOT intact: {summary}", file=sys.stderr)
        return 1
    print(f"audit log intact: {report.records} records")
    return 0
