"""Redis with replicas and Sentinels on the local target, and restarting a Redis a fault killed.

A primary, ``replicas`` replicas (``replicaof`` the primary) and ``sentinels`` Redis Sentinels
that watch the primary under the master name :data:`MASTER_NAME` and promote a replica within a
few seconds of its death. Roles in ``target.json`` are static (``redis``, ``sentinel``) because
the primary moves: ask the sentinels who it is now (:func:`primary_address`).

A Redis that a fault killed is restarted from its own command line in the run's ledger, as a
replica of the current primary, daemonized (no harness process is its parent), and listed both
in :data:`RESTART_LEDGER`, which the owning harness stops at teardown, and in the run's
``ledger.json``, which ``harness down`` and the reaping of a killed run stop.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import redis

from harness.drivers.process import SUPERVISOR_LEDGER, Ledger, ManagedProcess
from harness.util.errors import InfraError
from harness.util.net import wait_for_port

MASTER_NAME = "refplat"
# Sentinel declares the primary down after this long without an answer; a failover that stalls
# is retried after the failover timeout. At 1 s, a loaded 2-core machine made a sentinel find a
# just-promoted primary down too and fail over a second time, leaving two primaries for a while.
DOWN_AFTER_MS = 2000
FAILOVER_TIMEOUT_MS = 5000
RESTART_LEDGER = "ledger-restarts.json"
QUERY_TIMEOUT_S = 0.5
RESTART_TIMEOUT_S = 15.0

Address = tuple[str, int]


# Replicas acknowledge every second (REPLCONF ACK): 2 s is one missed acknowledgement of slack.
MIN_REPLICAS_MAX_LAG_S = 2


def redis_names(replicas: int) -> list[str]:
    """Process (and host) names of the Redis servers: ``redis`` alone, else ``redis-1`` (the
    first primary), ``redis-2``, ..."""
    return ["redis"] if replicas == 0 else [f"redis-{i}" for i in range(1, replicas + 2)]


def sentinel_names(count: int) -> list[str]:
    return [f"sentinel-{i}" for i in range(1, count + 1)]


def quorum(sentinels: int) -> int:
    """How many sentinels must agree that the primary is down: a majority."""
    return sentinels // 2 + 1


def redis_argv(
    binary: str, *, address: str, port: int, data: Path, fsync: str, min_replicas: int = 0
) -> list[str]:
    """The redis-server command line: append-only file, fsync per ``fsync``, no snapshots.

    With ``fsync="always"`` Redis fsyncs the file before it answers a write, so an
    acknowledged write survives a crash of Redis; ``never`` leaves it to the kernel.
    ``min_replicas``: a primary refuses every write (NOREPLICAS) unless that many replicas
    acknowledged its stream within ``MIN_REPLICAS_MAX_LAG_S``. A primary cut off from its
    replicas (a partition, a region lost) then stops taking writes within seconds: no
    controller goes on leading, and no session moves, on a side whose writes the failover
    will throw away (WAIT alone refuses to acknowledge such writes but still applies them).
    """
    durability = (
        [
            "--min-replicas-to-write",
            str(min_replicas),
            "--min-replicas-max-lag",
            str(MIN_REPLICAS_MAX_LAG_S),
        ]
        if min_replicas
        else []
    )
    return [
        binary,
        "--bind",
        address,
        "--port",
        str(port),
        "--dir",
        str(data),
        "--appendonly",
        "yes",
        "--appendfsync",
        "no" if fsync == "never" else fsync,
        "--save",
        "",
        # Reachable only on loopback or inside the run's own fabric, which has no uplink.
        "--protected-mode",
        "no",
        # A replica that needs a full copy gets it at once, not after the default 5 s wait for
        # more replicas to share the transfer: writes WAIT for a replica from the first one.
        "--repl-diskless-sync-delay",
        "0",
        *durability,
    ]


def sentinel_conf(*, address: str, port: int, data: Path, primary: Address, sentinels: int) -> str:
    """A sentinel's configuration file (Sentinel rewrites it as it learns the topology)."""
    host, primary_port = primary
    return (
        f"bind {address}\n"
        f"port {port}\n"
        f"dir {data}\n"
        # Reachable only on loopback or inside the run's own fabric, which has no uplink.
        "protected-mode no\n"
        f"sentinel monitor {MASTER_NAME} {host} {primary_port} {quorum(sentinels)}\n"
        f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {MASTER_NAME} 1\n"
    )


@contextlib.contextmanager
def _client(address: Address) -> Iterator[redis.Redis]:
    conn = redis.Redis(
        host=address[0],
        port=address[1],
        socket_timeout=QUERY_TIMEOUT_S,
        socket_connect_timeout=QUERY_TIMEOUT_S,
        decode_responses=True,
    )
    try:
        yield conn
    finally:
        conn.close()


def ask_sentinel(sentinel: Address) -> Address | None:
    """The primary one sentinel reports now, or None when it does not answer."""
    try:
        with _client(sentinel) as conn:
            reply = conn.sentinel_get_master_addr_by_name(MASTER_NAME)
    except redis.RedisError:
        return None
    if not isinstance(reply, list | tuple) or len(reply) != 2:
        return None
    host, port = reply
    return str(host), int(port)


def primary_address(sentinels: Sequence[Address]) -> Address | None:
    """The primary a majority of ``sentinels`` agree on now, or None."""
    votes = Counter(a for a in (ask_sentinel(s) for s in sentinels) if a is not None)
    if not votes:
        return None
    address, count = votes.most_common(1)[0]
    return address if count >= quorum(len(sentinels)) else None


def online_replicas(address: Address) -> int:
    """How many replicas are connected to the Redis at ``address`` and streaming (0 on error)."""
    try:
        with _client(address) as conn:
            info: dict[str, Any] = conn.info("replication")
    except redis.RedisError:
        return 0
    return sum(
        1
        for key, value in info.items()
        if key.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
    )


def sentinels_settled(sentinels: Sequence[Address], *, replicas: int) -> bool:
    """True once no failover is under way: every sentinel names the same primary, sees it up
    with ``replicas`` replicas and every other sentinel, and the primary streams to
    ``replicas`` replicas. A fault injected before then hits a failover in progress."""
    primaries = {ask_sentinel(s) for s in sentinels}
    if len(primaries) != 1 or None in primaries:
        return False
    for sentinel in sentinels:
        try:
            with _client(sentinel) as conn:
                state = conn.sentinel_master(MASTER_NAME)
        except redis.RedisError:
            return False
        if not isinstance(state, dict) or state.get("flags") != "master":
            return False  # s_down, o_down, failover_in_progress, ...
        if int(state.get("num-slaves", 0)) < replicas:
            return False
        if int(state.get("num-other-sentinels", 0)) < len(sentinels) - 1:
            return False
    (primary,) = primaries
    return primary is not None and online_replicas(primary) >= replicas


def await_replicas(primary: Address, *, replicas: int, timeout_s: float) -> None:
    """Wait until ``replicas`` replicas stream from ``primary``; TimeoutError after that."""
    deadline = time.monotonic() + timeout_s
    while online_replicas(primary) < replicas:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{replicas} Redis replica(s) did not all sync with the primary")
        time.sleep(0.05)


def await_settled(sentinels: Sequence[Address], *, replicas: int, timeout_s: float) -> None:
    """Wait until :func:`sentinels_settled`; TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not sentinels_settled(sentinels, replicas=replicas):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the Redis Sentinels did not settle on one primary with {replicas} replica(s)"
            )
        time.sleep(0.1)


# --- restarting a killed Redis ---------------------------------------------------------------


def current_pid(run_dir: Path, name: str, pid: int) -> int:
    """The pid of ``name`` now: its latest live restart, else ``pid`` (from ``target.json``)."""
    for entry in reversed(Ledger(run_dir / RESTART_LEDGER).entries()):
        restart = ManagedProcess.from_entry(entry)
        if restart.name == name and restart.running():
            return restart.pid
    return pid


def _argv_option(argv: Sequence[str], option: str) -> str:
    try:
        return argv[list(argv).index(option) + 1]
    except (ValueError, IndexError):
        raise InfraError(f"the Redis command line {' '.join(argv)} has no {option}") from None


def restart_redis(
    run_dir: Path, name: str, *, replicaof: Address | None, primary: bool = False
) -> int:
    """Start the Redis ``name`` of the run in ``run_dir`` again with its data directory, as a
    replica of ``replicaof``, or as a primary (``primary``), else in the role it was deployed
    with; return its pid once it accepts connections."""
    entries = [e for e in Ledger(run_dir / SUPERVISOR_LEDGER).entries() if e["name"] == name]
    if not entries or entries[0].get("role") != "redis":
        raise InfraError(f"{name!r} is not a Redis of the run in {run_dir}; cannot restart it.")
    # The supervisor's entry may be an earlier restart it adopted: drop what a restart adds.
    argv = _without([str(a) for a in entries[0]["argv"]], {"--daemonize", "--pidfile", "--logfile"})
    if replicaof is not None or primary:  # the primary it followed may be no primary now
        argv = _without(argv, {"--replicaof"}, values=2)
    address, port = _argv_option(argv, "--bind"), int(_argv_option(argv, "--port"))
    pid_file = Path(_argv_option(argv, "--dir")) / "redis.pid"
    pid_file.unlink(missing_ok=True)
    log = run_dir / "logs" / f"{name}.log"
    extra = ["--daemonize", "yes", "--pidfile", str(pid_file), "--logfile", str(log)]
    if replicaof is not None:
        extra += ["--replicaof", replicaof[0], str(replicaof[1])]
    try:
        subprocess.run(
            [*argv, *extra], stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise InfraError(f"Could not restart {name}: {exc}; see {log}.") from exc
    pid = _await_pid_file(pid_file, name=name, log=log)
    try:
        wait_for_port(address, port, timeout_s=RESTART_TIMEOUT_S, what=name)
    except TimeoutError as exc:
        raise InfraError(f"{exc}; see {log}") from exc
    _record_restart(run_dir, name=name, pid=pid, argv=[*argv, *extra], log=log)
    return pid


def _without(argv: list[str], options: set[str], *, values: int = 1) -> list[str]:
    """``argv`` without each of ``options`` and the ``values`` words after it."""
    out: list[str] = []
    skip = 0
    for word in argv:
        if skip:
            skip -= 1
        elif word in options:
            skip = values
        else:
            out.append(word)
    return out


def _await_pid_file(path: Path, *, name: str, log: Path) -> int:
    deadline = time.monotonic() + RESTART_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text().strip())
        time.sleep(0.05)
    raise InfraError(f"{name} wrote no pid file {path} within {RESTART_TIMEOUT_S:g} s; see {log}.")


def _record_restart(run_dir: Path, *, name: str, pid: int, argv: list[str], log: Path) -> None:
    """List the new process in :data:`RESTART_LEDGER` (teardown of the owning harness stops
    it) and in the run's ledger (``harness down`` and the reaping of a killed run stop it)."""
    proc = ManagedProcess.started(name, argv, role="redis", pid=pid, log_path=log)
    for ledger in (RESTART_LEDGER, SUPERVISOR_LEDGER):
        Ledger(run_dir / ledger).add(proc)


def replica_linked(address: Address) -> bool:
    """True when the Redis at ``address`` is a replica whose link to its primary is up."""
    try:
        with _client(address) as conn:
            info: dict[str, Any] = conn.info("replication")
    except redis.RedisError:
        return False
    return info.get("role") == "slave" and info.get("master_link_status") == "up"
