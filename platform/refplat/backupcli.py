"""``refplat backup create|restore|list``: one-shot backups of the Redis state and world files.

- ``create REDIS [--data-dir D] --out DIR`` writes ``DIR/<id>/`` (see
  :mod:`refplat.backup`) and prints the keys, servers, files, bytes and seconds it took;
- ``restore REDIS [--data-dir D] --from DIR [--id ID] [--force]`` checks and
  restores the backup ``DIR`` (or backup ``ID`` in it, or its newest) into an empty Redis
  (and data directory); ``--force`` replaces what is there;
- ``list --from DIR`` prints one line per backup.

REDIS is ``--redis-url URL``, or ``--redis-sentinel HOST:PORT`` (repeatable) with
``--redis-master NAME``: the backup then reads from, and restores into, whoever is master.

Each takes ``--json`` to print one JSON object instead. Errors (a missing directory, a
corrupt archive, a non-empty target, an unreachable Redis) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import redis

from refplat.backup import (
    BackupReport,
    Manifest,
    connect_bytes,
    create_backup,
    find_backup,
    list_backups,
    restore_backup,
)
from refplat.redisconn import add_redis_arguments, redis_settings
from refplat.worldbackup import BackupError


def add_backup_parser(sub: Any) -> None:
    """Add the ``backup`` subcommand and its own subcommands to ``sub``."""
    backup = sub.add_parser("backup", help="back up and restore the state and world files")
    commands = backup.add_subparsers(dest="backup_command", required=True)
    create = commands.add_parser("create", help="back up Redis (and the world files)")
    add_redis_arguments(create, wait=False)
    create.add_argument("--data-dir", type=Path, default=None)
    create.add_argument("--out", required=True, type=Path)
    restore = commands.add_parser("restore", help="restore a backup into an empty target")
    add_redis_arguments(restore, wait=False)
    restore.add_argument("--data-dir", type=Path, default=None)
    restore.add_argument("--from", required=True, type=Path, dest="source")
    restore.add_argument("--id", default=None, dest="backup_id")
    restore.add_argument("--force", action="store_true", help="replace what the target holds")
    listing = commands.add_parser("list", help="list the backups in a directory")
    listing.add_argument("--from", required=True, type=Path, dest="source")
    for command in (create, restore, listing):
        command.add_argument("--json", action="store_true", help="print one JSON object")


def run_backup(args: argparse.Namespace) -> int:
    """Run one backup command; 0 on success, 2 on any error (one line on stderr)."""
    try:
        if args.backup_command == "list":
            return _list(list_backups(args.source), as_json=args.json)
        restoring = args.backup_command == "restore"
        source = find_backup(args.source, args.backup_id) if restoring else None
        settings = redis_settings(args)
        client = connect_bytes(settings)
        try:
            if source is None:
                report = create_backup(client, out=args.out, data_dir=args.data_dir)
            else:
                report = restore_backup(
                    client, source=source, data_dir=args.data_dir, force=args.force
                )
        finally:
            client.close()
    except (BackupError, ValueError) as exc:
        return _fail(args, str(exc))
    except redis.RedisError as exc:
        where = redis_settings(args).describe()
        return _fail(args, f"Redis at {where} failed: {str(exc).rstrip('.')}; is it running?")
    except OSError as exc:
        return _fail(args, f"{exc}; check the paths and their permissions")
    _print_report(report, verb=args.backup_command, as_json=args.json)
    return 0


def _fail(args: argparse.Namespace, message: str) -> int:
    print(f"backup {args.backup_command} failed: {message}", file=sys.stderr)
    return 2


def _print_report(report: BackupReport, *, verb: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"command": verb, **report.to_json()}, sort_keys=True))
        return
    done = "saved" if verb == "create" else "restored"
    print(
        f"backup {report.id} {done} ({report.path}): {report.keys} Redis keys "
        f"({report.state_bytes} bytes compressed), {report.servers} servers, "
        f"{report.files} world files ({report.bytes} bytes) in {report.seconds:.3f} s"
    )


def _list(backups: list[Manifest], *, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"backups": [m.to_json() for m in backups]}, sort_keys=True))
        return 0
    if not backups:
        print("no backups")
    for m in backups:
        keys = m.state.keys if m.state else 0
        print(
            f"{m.id}  {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(m.created_at))}  "
            f"{keys} keys  {len(m.world)} servers  "
            f"{m.files} files  {m.bytes} bytes  took {m.seconds:.3f} s"
        )
    return 0
