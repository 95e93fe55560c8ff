"""The ``refplat`` command: one subcommand per process kind (api, controller, agent)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

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
    LeaderLease,
    LostSessionPolicy,
)
from refplat.gameserver import GameServerProcess
from refplat.kubepod import DEFAULT_IMAGE, PodSpecSettings
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

if TYPE_CHECKING:
    from refplat.kuberuntime import KubeRuntime

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


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text}")
    return key, value


def _lease_name(text: str) -> tuple[str, str]:
    namespace, sep, name = text.partition("/")
    if not sep or not namespace or not name:
        raise argparse.ArgumentTypeError(f"expected NAMESPACE/NAME, got {text}")
    return namespace, name


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
    api.add_argument(
        "--fail-readiness",
        action="store_true",
        help="answer 503 on /readyz (a build that fails its readiness, for deploy tests)",
    )
    api.add_argument(
        "--drain-s",
        type=float,
        default=0.0,
        help="after SIGTERM, answer 503 on /readyz for this long before closing (0: close at once)",
    )
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
    ctl.add_argument(
        "--kube-lease",
        type=_lease_name,
        default=None,
        metavar="NAMESPACE/NAME",
        help="elect the leader on this coordination.k8s.io Lease instead of in Redis",
    )
    ctl.add_argument("--kubeconfig", type=Path, default=None)
    agent = sub.add_parser("agent", help="run the game servers of one node")
    add_redis_arguments(agent)
    agent.add_argument("--node", required=True)
    agent.add_argument("--address", default="127.0.0.1")
    agent.add_argument("--listen", required=True, type=host_port_arg, metavar="HOST:PORT")
    agent.add_argument("--heartbeat-interval-s", type=_positive, default=1.0)
    _add_kube_parsers(sub)
    add_audit_parser(sub)
    add_backup_parser(sub)
    return parser


def _add_kube_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The kube runtime (``kube-agent``) and the process in each of its Pods (``gameserver``)."""
    kube = sub.add_parser("kube-agent", help="run the game servers of one node as Pods")
    add_redis_arguments(kube)
    kube.add_argument("--namespace", required=True)
    kube.add_argument("--node", default=None, help="the platform node (default: kube-NAMESPACE)")
    kube.add_argument("--kubeconfig", type=Path, default=None)
    kube.add_argument("--image", default=DEFAULT_IMAGE)
    kube.add_argument(
        "--node-selector", type=_label, action="append", default=[], metavar="KEY=VALUE"
    )
    kube.add_argument("--listen", required=True, type=host_port_arg, metavar="HOST:PORT")
    kube.add_argument("--heartbeat-interval-s", type=_positive, default=1.0)
    game = sub.add_parser("gameserver", help="serve one game server (a kube runtime Pod)")
    game.add_argument("--listen", required=True, type=host_port_arg, metavar="HOST:PORT")
    game.add_argument("--version", required=True)
    game.add_argument("--server-id", required=True)


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


def _process(args: argparse.Namespace, store: Store) -> Api | Controller | Agent | KubeRuntime:
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
            fail_readiness=args.fail_readiness,
            drain_s=args.drain_s,
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
            lease=_kube_lease(args, store) if args.kube_lease else None,
        )
    if args.command == "kube-agent":
        return _kube_runtime(args, store)
    return Agent(
        store=store,
        settings=AgentSettings(
            node=args.node,
            address=args.address,
            listen=args.listen,
            heartbeat_interval_s=args.heartbeat_interval_s,
        ),
    )


def _kube_lease(args: argparse.Namespace, store: Store) -> LeaderLease:
    from refplat.kubelease import KubeLease
    from refplat.kubewatch import kube_client

    namespace, name = args.kube_lease
    return KubeLease(
        api=kube_client(args.kubeconfig),
        namespace=namespace,
        name=name,
        holder=args.controller_id,
        ttl_s=args.lease_ttl_s,
        store=store,
    )


def _kube_runtime(args: argparse.Namespace, store: Store) -> KubeRuntime:
    from refplat.kuberuntime import KubeRuntime, KubeRuntimeSettings
    from refplat.kubewatch import kube_client

    settings = KubeRuntimeSettings(
        node=args.node or f"kube-{args.namespace}",
        namespace=args.namespace,
        listen=args.listen,
        pod=PodSpecSettings(image=args.image, node_selector=tuple(args.node_selector)),
        heartbeat_interval_s=args.heartbeat_interval_s,
    )
    return KubeRuntime(store=store, api=kube_client(args.kubeconfig), settings=settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``refplat`` console script; returns the exit code."""
    parser = build_parser()
    args = parse_args(parser, argv)
    configure_logging(process=args.command, verbose=args.verbose)
    if args.command == "audit":
        return run_audit(args)
    if args.command == "backup":
        return run_backup(args)
    if args.command == "gameserver":
        game = GameServerProcess(server_id=args.server_id, version=args.version, listen=args.listen)
        return run_until_signalled(game.run)

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
