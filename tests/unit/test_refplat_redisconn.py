"""How refplat processes are told to reach Redis: the flags, their checks, the write WAIT."""

from __future__ import annotations

import pytest

from refplat.cli import build_parser, parse_args
from refplat.redisconn import RedisSettings, ReplicationError, ReplicaWait
from refplat.runtime import HostPort

API = ["api", "--listen", "127.0.0.1:8080", "--instance", "a", "--admin-token-file", "t"]
SENTINELS = ["--redis-sentinel", "10.0.0.1:26379", "--redis-sentinel", "10.0.0.2:26379"]


def parse_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as caught:
        parse_args(build_parser(), argv)
    assert 2 == caught.value.code
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (API, "refplat api: no Redis given; pass --redis-url URL, or --redis-sentinel"),
        (
            [*API, "--redis-url", "redis://r:6379/0", *SENTINELS, "--redis-master", "m"],
            "refplat api: --redis-url and --redis-sentinel exclude each other",
        ),
        (
            ["agent", "--listen", "127.0.0.1:1", "--node", "n", *SENTINELS],
            "refplat agent: --redis-sentinel needs --redis-master NAME",
        ),
        (
            [*API, "--redis-url", "redis://r:6379/0", "--redis-master", "m"],
            "refplat api: --redis-master applies only with --redis-sentinel",
        ),
        (
            ["audit", "verify", "--key-file", "k"],
            "refplat audit verify: no Redis given",
        ),
        (
            [*API, "--redis-url", "redis://r/0", "--redis-wait-replicas", "-1"],
            "argument --redis-wait-replicas: expected a whole number >= 0, got '-1'",
        ),
        (
            [*API, "--redis-url", "redis://r/0", "--redis-wait-timeout-ms", "0"],
            "argument --redis-wait-timeout-ms: expected a whole number >= 1, got '0'",
        ),
        (
            [*API, "--redis-sentinel", "nohost", "--redis-master", "m"],
            "argument --redis-sentinel: expected HOST:PORT, got 'nohost'",
        ),
    ],
    ids=[
        "neither",
        "both",
        "sentinel-without-master",
        "master-without-sentinel",
        "audit-neither",
        "negative-replicas",
        "zero-timeout",
        "sentinel-not-host-port",
    ],
)
def test_bad_redis_flags_are_a_usage_error_naming_the_problem(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert expected in parse_error(argv, capsys)


def test_a_redis_url_needs_no_wait_by_default() -> None:
    args = parse_args(build_parser(), [*API, "--redis-url", "redis://r:6379/0"])

    assert RedisSettings(url="redis://r:6379/0") == args.redis


def test_sentinels_a_master_name_and_a_wait_are_one_setting() -> None:
    argv = [*API, *SENTINELS, "--redis-master", "refplat", "--redis-wait-replicas", "1"]

    args = parse_args(build_parser(), [*argv, "--redis-wait-timeout-ms", "250"])

    expected = RedisSettings(
        sentinels=(HostPort("10.0.0.1", 26379), HostPort("10.0.0.2", 26379)),
        master="refplat",
        wait=ReplicaWait(replicas=1, timeout_ms=250),
    )
    assert expected == args.redis


@pytest.mark.parametrize("command", ["controller", "agent"])
def test_every_process_takes_the_sentinel_and_wait_flags(command: str) -> None:
    own = ["--id", "c"] if command == "controller" else ["--node", "n"]
    argv = [command, "--listen", "127.0.0.1:1", *own, *SENTINELS, "--redis-master", "m"]

    args = parse_args(build_parser(), [*argv, "--redis-wait-replicas", "2"])

    assert (2, "m") == (args.redis.wait.replicas, args.redis.master)


def test_the_audit_commands_reach_redis_through_sentinels_too() -> None:
    argv = ["audit", "archive", "--key-file", "k", "--out", "d", *SENTINELS]

    args = parse_args(build_parser(), [*argv, "--redis-master", "m"])

    assert ("m", None) == (args.redis.master, args.redis.wait)


def test_a_write_too_few_replicas_acknowledged_is_a_replication_error_naming_them() -> None:
    wait = ReplicaWait(replicas=2, timeout_ms=100)

    wait.check(2)
    with pytest.raises(ReplicationError, match="only 1 of 2 required replica"):
        wait.check(1)


def test_the_socket_timeout_leaves_room_for_the_wait() -> None:
    plain = RedisSettings(url="redis://r/0")
    waiting = RedisSettings(url="redis://r/0", wait=ReplicaWait(replicas=1, timeout_ms=1500))

    assert 1.5 == waiting.socket_timeout_s - plain.socket_timeout_s


def test_the_description_of_a_url_hides_its_password() -> None:
    assert "r:6379/0" == RedisSettings(url="redis://:secret@r:6379/0").describe()
