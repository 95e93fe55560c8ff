"""The ``refplat`` command: one subcommand per process kind (api, controller, agent)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from refplat.agent import Agent, AgentSettings
from refplat.api import MAX_SESSION_TTL_S, Api, ApiSettings, read_admin_token
from refplat.auditcli import add_audit_parser, run_audit
from refplat.backupcli import add_backup_parser, run_backup
from refplat.controller import (
    DEFAULT_HEARTBEAT_TIMEOUT_S,
    DEFAULT_LEASE_TTL_S,
    DEFAULT_RENEW_INTERVAL_S,
    Controller,
    ControllerSettings,
    LostSessionPolicy,
)
from refplat.quota import DEFAULT_QUOTA_BYTES
from refplat.ratelimit import DEFAULT_PER_SESSION, DEFAULT_PER_TOKEN, RateLimit
from refplat.redisconn import (
    add_redis_arguments,
    connect,
    connect_sync,
    host_port_arg,
    redis_settings,
)
from refplat.runtime import configure_logging, run_until_signalled
from refplat.store import Store

log = logging.getLogger(__name__)


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _rate_limit(text: str) -> RateLimit:
    try:
        return RateLimit.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _bytes(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of bytes >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="refplat", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)
    api = sub.add_parser("api", help="serve the JSON API")
    add_redis_arguments(api)
    api.add_argument("--listen", required=True, type=host_port_arg, metavar="HOST:PORT")
    api.add_argument("--instance", required=True)
    api.add_argument("--admin-token-file", required=True, type=Path)
    api.add_argument("--session-ttl-s", type=_positive, default=MAX_SESSION_TTL_S)
    api.add_argument("--audit-key-file", type=Path, default=None)
    api.add_argument("--rate-limit-per-token", type=_rate_limit, default=DEFAULT_PER_TOKEN)
    api.add_argument("--rate-limit-per-session", type=_rate_limit, default=DEFAULT_PER_SESSION)
    api.add_argument("--data-dir", type=Path, default=None)
    api.add_argument("--session-disk-quota-bytes", type=_bytes, default=DEFAULT_QUOTA_BYTES)
    ctl = sub.add_parser("controller", help="elect a leader and reconcile")
    add_redis_arguments(ctl)
    ctl.add_argument("--id", required=True, dest="controller_id")
    ctl.add_argument("--listen", required=True, type=host_port_arg, metavar="HOST:PORT")
    ctl.add_argument("--lease-ttl-s", type=_positive, default=DEFAULT_LEASE_TTL_S)
    ctl.add_argument("--renew-interval-s", type=_positive, default=DEFAULT_RENEW_INTERVAL_S)
    ctl.add_argument("--heartbeat-timeout-s", type=_positive, default=DEFAULT_HEARTBEAT_TIMEOUT_S)
    ctl.add_argument("--reconcile-interval-s", type=_positive, default=0.5)
    ctl.add_argument("--audit-key-file", type=Path, default=None)
    ctl.add_argument("--data-dir", type=Path, default=None)
    ctl.add_argument(
        "--audit-archive-dir",
        type=Path,
        default=None,
        help="as leader, move the audit log into compressed segments here (needs a key file)",
    )
    ctl.add_argument("--audit-archive-interval-s", type=_positive, default=60.0)
    ctl.add_argument(
        "--lost-session-policy",
        choices=[p.value for p in LostSessionPolicy],
        default=LostSessionPolicy.END.value,
        help="a session whose node was lost ends ServerLost, or moves to another Ready server",
    )
    agent = sub.add_parser("agent", help="run the game servers of one node")
    add_redis_arguments(agent)
    agent.add_argument("--node", required=True)
    agent.add_argument("--address", default="127.0.0.1")
    agent.add_argument("--listen", required=True, type=host_port_arg, metavar="HOST:PORT")
    agent.add_argument("--heartbeat-interval-s", type=_positive, default=1.0)
    add_audit_parser(sub)
    add_backup_parser(sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; ``args.redis`` holds the checked Redis flags of commands that take them."""
    args = parser.parse_args(argv)
    if hasattr(args, "redis_url"):
        try:
            args.redis = redis_settings(args)
        except ValueError as exc:
            command = " ".join(filter(None, [args.command, getattr(args, "audit_command", None)]))
            parser.error(f"refplat {command}: {exc}")
    return args


def _process(args: argparse.Namespace, store: Store) -> Api | Controller | Agent:
    if args.command == "api":
        settings = ApiSettings(
            instance=args.instance,
            listen=args.listen,
            admin_token_file=args.admin_token_file,
            session_ttl_s=args.session_ttl_s,
            audit_key_file=args.audit_key_file,
            rate_limit_per_token=args.rate_limit_per_token,
            rate_limit_per_session=args.rate_limit_per_session,
            data_dir=args.data_dir,
            session_disk_quota_bytes=args.session_disk_quota_bytes,
        )
        token = read_admin_token(settings.admin_token_file)
        return Api(store=store, settings=settings, admin_token=token)
    if args.command == "controller":
        return Controller(
            store=store,
            settings=ControllerSettings(
                controller_id=args.controller_id,
                listen=args.listen,
                lease_ttl_s=args.lease_ttl_s,
                renew_interval_s=args.renew_interval_s,
                heartbeat_timeout_s=args.heartbeat_timeout_s,
                reconcile_interval_s=args.reconcile_interval_s,
                audit_key_file=args.audit_key_file,
                data_dir=args.data_dir,
                lost_session_policy=LostSessionPolicy(args.lost_session_policy),
                audit_archive_dir=args.audit_archive_dir,
                audit_archive_interval_s=args.audit_archive_interval_s,
            ),
            archive_redis=connect_sync(args.redis) if args.audit_archive_dir else None,
        )
    return Agent(
        store=store,
        settings=AgentSettings(
            node=args.node,
            address=args.address,
            listen=args.listen,
            heartbeat_interval_s=args.heartbeat_interval_s,
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``refplat`` console script; returns the exit code."""
    parser = build_parser()
    args = parse_args(parser, argv)
    configure_logging(process=args.command, verbose=args.verbose)
    if args.command == "audit":
        return run_audit(args)
    if args.command == "backup":
        return run_backup(args)

    async def run(stop: asyncio.Event) -> None:
        log.info("Redis: %s", args.redis.describe())
        store = Store(connect(args.redis), wait=args.redis.wait)
        try:
            await _process(args, store).run(stop)
        finally:
            await store.redis.aclose()

    try:
        return run_until_signalled(run)
    except (ValueError, OSError) as exc:
        log.error("%s failed to start: %s", args.command, exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
