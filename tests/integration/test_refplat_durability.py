"""Durability of acknowledged writes: a Redis restart, a Sentinel failover, WAIT for a replica.

Every Redis, replica, sentinel and api here is a real process on a free loopback port with its
own directory under ``tmp_path``, stopped on every path by the fixtures.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from harness.util.net import free_port, wait_for_port
from refplat.auditlog import LOG_KEY
from tests.integration.test_refplat_platform import ADMIN_TOKEN, Launcher, call, wait_for

pytestmark = pytest.mark.integration

MASTER = "refplat"
SERVER_KEY = "refplat:server:{}"
FILLER_BYTES = 8 * 1024 * 1024


class Processes:
    """Named Redis-family processes with logs in ``tmp_path``; ``close`` stops every one."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str]) -> None:
        with open(self.tmp_path / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def redis(self, name: str, port: int, *extra: str) -> None:
        """A redis-server with an append-only file fsynced before each write is answered."""
        data = self.tmp_path / name
        data.mkdir(exist_ok=True)
        argv = [_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(data), "--save", "", "--appendonly", "yes"]
        argv += ["--repl-diskless-sync-delay", "0"]  # a new replica syncs at once
        self.start(name, [*argv, "--appendfsync", "always", *extra])
        wait_for_port("127.0.0.1", port, timeout_s=10, what=name)

    def sentinel(self, name: str, port: int, master_port: int) -> None:
        """A redis-sentinel monitoring the master on ``master_port`` with quorum 1."""
        conf = self.tmp_path / f"{name}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {self.tmp_path}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
        )
        self.start(name, [_binary("redis-sentinel"), str(conf)])
        wait_for_port("127.0.0.1", port, timeout_s=10, what=name)

    def signal(self, name: str, signum: signal.Signals) -> None:
        self.procs[name].send_signal(signum)

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown, no final fsync."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)

    def close(self) -> None:
        for proc in self.procs.values():
            proc.send_signal(signal.SIGCONT)  # a stopped process would not act on SIGTERM
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs.clear()


class RedisArgsLauncher(Launcher):
    """A :class:`Launcher` whose processes reach Redis through the given flags."""

    def __init__(self, *, redis_args: list[str], tmp_path: Path) -> None:
        super().__init__(redis_url="", tmp_path=tmp_path)
        self.redis_args = redis_args

    def start(self, name: str, *args: str) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        argv = [sys.executable, "-m", "refplat", *args, *self.redis_args]
        argv += ["--listen", f"127.0.0.1:{port}"]
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc, f"http://127.0.0.1:{port}"


def _binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if path is None:
        pytest.fail(f"{name} is not installed; run scripts/setup.sh (make test does).")
    return path


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.close()


@contextlib.contextmanager
def api_with(tmp_path: Path, *redis_args: str) -> Iterator[str]:
    """One api replica started with ``redis_args``; yields its base URL, stops it on exit."""
    launcher = RedisArgsLauncher(redis_args=list(redis_args), tmp_path=tmp_path)
    try:
        yield launcher.start_api()
    finally:
        launcher.close()


@contextlib.contextmanager
def client(port: int) -> Iterator[redis.Redis]:
    conn = redis.Redis(port=port, decode_responses=True, socket_timeout=5)
    try:
        yield conn
    finally:
        conn.close()


def new_tenant(api: str) -> str:
    status, body = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "acme"})
    assert 201 == status, body
    return str(body["token"])


def missing_servers(port: int, server_ids: list[str]) -> list[str]:
    """The ids among ``server_ids`` that the Redis on ``port`` does not hold."""
    with client(port) as conn:
        return [sid for sid in server_ids if not conn.exists(SERVER_KEY.format(sid))]


def test_acknowledged_creates_survive_a_redis_crash_and_restart(
    processes: Processes, tmp_path: Path
) -> None:
    port = free_port()
    processes.redis("redis", port)
    with api_with(tmp_path, "--redis-url", f"redis://127.0.0.1:{port}/0") as api:
        token = new_tenant(api)
        created = []
        for _ in range(40):
            status, body = call("POST", f"{api}/v1/servers", token=token, body={})
            assert 201 == status, body
            created.append(str(body["id"]))

        processes.kill("redis")
        processes.redis("redis", port)

        assert [] == missing_servers(port, created)
        # The api reconnects by itself and serves what it acknowledged before the crash.
        url = f"{api}/v1/servers/{created[-1]}"
        body = wait_for(
            "the api answering after the restart", lambda: _ok(url, token), timeout_s=15
        )
        assert created[-1] == body["id"]


def _ok(url: str, token: str) -> Any:
    status, body = call("GET", url, token=token)
    return body if status == 200 else None


def test_a_write_fewer_replicas_acknowledged_answers_503_and_succeeds_once_one_is_attached(
    processes: Processes, tmp_path: Path
) -> None:
    primary, replica = free_port(), free_port()
    processes.redis("primary", primary)
    redis_args = ["--redis-url", f"redis://127.0.0.1:{primary}/0"]
    waits = ["--redis-wait-replicas", "1", "--redis-wait-timeout-ms", "200"]
    with api_with(tmp_path, *redis_args, *waits) as api:
        status, body = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "a"})

        assert 503 == status
        assert "0 of 1 required replica(s) acknowledged" in body["error"]
        # Reads (and the rate limiter's soft state) do not wait for replicas.
        assert 200 == call("GET", f"{api}/v1/servers", token=ADMIN_TOKEN)[0]

        processes.redis("replica", replica, "--replicaof", "127.0.0.1", str(primary))
        wait_for("the replica in sync", lambda: _replica_online(primary), timeout_s=15)

        # A client retries a 503 (it carries Retry-After); now a replica acknowledges.
        body = wait_for("a 201 with a replica attached", lambda: _created(api), timeout_s=15)
        assert "b" == body["name"]


def _created(api: str) -> Any:
    status, body = call("POST", f"{api}/v1/tenants", token=ADMIN_TOKEN, body={"name": "b"})
    return body if status == 201 else None


def _replica_online(port: int) -> bool:
    with client(port) as conn:
        info = conn.info("replication")
    return int(info.get("connected_slaves", 0)) >= 1 and "online" in str(info.get("slave0"))


def _stall_replication(port: int) -> None:
    """Write more to the primary than a stopped replica's socket buffers hold."""
    with client(port) as conn:
        conn.set("test:filler", "x" * FILLER_BYTES)


def _master_is(sentinel: int, port: int) -> bool:
    with client(sentinel) as conn:
        address = conn.sentinel_get_master_addr_by_name(MASTER)
    return bool(address) and int(address[1]) == port


def _sentinel_knows(sentinel: int) -> bool:
    with client(sentinel) as conn:
        replicas = conn.sentinel_slaves(MASTER)
    return any(r["master-link-status"] == "ok" for r in replicas)


class CreateLoad:
    """Threads creating servers through the api until stopped; records every 201."""

    def __init__(self, api: str, token: str) -> None:
        self.api, self.token = api, token
        self.stop = threading.Event()
        self.created: list[str] = []
        self._lock = threading.Lock()

    def worker(self) -> None:
        while not self.stop.is_set():
            try:
                status, body = call("POST", f"{self.api}/v1/servers", token=self.token, body={})
            except OSError:  # timed out mid-failover: not acknowledged
                status, body = 0, None
            with self._lock:
                if status == 201:
                    self.created.append(str(body["id"]))
                else:  # not acknowledged: a 503 or a client timeout, never a 500
                    assert status in (0, 503), (status, body)
            if status != 201:
                time.sleep(0.05)

    def count(self) -> int:
        with self._lock:
            return len(self.created)


def sentinel_pair(processes: Processes) -> tuple[int, int, int]:
    """A primary, its replica and a sentinel that knows both; their ports."""
    primary, replica, sentinel = free_port(), free_port(), free_port()
    processes.redis("primary", primary)
    processes.redis("replica", replica, "--replicaof", "127.0.0.1", str(primary))
    processes.sentinel("sentinel", sentinel, primary)
    wait_for("the sentinel to see the replica", lambda: _sentinel_knows(sentinel), timeout_s=20)
    return primary, replica, sentinel


def test_acknowledged_creates_survive_a_sentinel_failover_and_the_api_serves_again(
    processes: Processes, tmp_path: Path
) -> None:
    primary, replica, sentinel = sentinel_pair(processes)
    redis_args = ["--redis-sentinel", f"127.0.0.1:{sentinel}", "--redis-master", MASTER]
    waits = ["--redis-wait-replicas", "1", "--redis-wait-timeout-ms", "500"]
    with api_with(tmp_path, *redis_args, *waits) as api:
        load = CreateLoad(api, new_tenant(api))
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(load.worker) for _ in range(4)]
            try:
                wait_for("creates before the fault", lambda: load.count() >= 20, timeout_s=15)
                # The replica stalls behind a large write, so the creates that follow reach
                # the primary only (without WAIT they would be acknowledged); then it dies.
                processes.signal("replica", signal.SIGSTOP)
                _stall_replication(primary)
                time.sleep(0.3)
                processes.kill("primary")
                processes.signal("replica", signal.SIGCONT)
                promoted = functools.partial(_master_is, sentinel, replica)
                wait_for("the sentinel to promote the replica", promoted, timeout_s=20)
                # The old primary comes back, as a replica of the new one (as an operator would).
                processes.redis("primary", primary, "--replicaof", "127.0.0.1", str(replica))
                rejoined = functools.partial(_replica_online, replica)
                wait_for("a replica of the new primary", rejoined, timeout_s=20)
                goal = load.count() + 10
                wait_for("creates after the failover", lambda: load.count() >= goal, timeout_s=20)
            finally:
                load.stop.set()
            for future in futures:
                future.result(timeout=30)

    assert load.created
    assert [] == missing_servers(replica, load.created)


def test_the_audit_verifier_reaches_redis_through_a_sentinel(
    processes: Processes, tmp_path: Path
) -> None:
    primary, sentinel = free_port(), free_port()
    processes.redis("primary", primary)
    processes.sentinel("sentinel", sentinel, primary)
    key_file = tmp_path / "audit.key"
    refplat = [sys.executable, "-m", "refplat", "audit"]
    subprocess.run([*refplat, "keygen", "--out", str(key_file)], check=True, timeout=30)
    with client(primary) as conn:
        conn.rpush(LOG_KEY, "not a record")

    via_sentinel = ["--redis-sentinel", f"127.0.0.1:{sentinel}", "--redis-master", MASTER]
    verify = subprocess.run(
        [*refplat, "verify", "--key-file", str(key_file), *via_sentinel],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert 1 == verify.returncode, verify.stderr
    assert "audit log NOT intact: 1 problem(s) in 1 records" in verify.stderr


def test_backup_through_sentinel_reads_whoever_is_master_after_a_failover(
    processes: Processes, tmp_path: Path
) -> None:
    primary, replica, sentinel = sentinel_pair(processes)
    with client(primary) as conn:
        conn.set("refplat:tenant:t-before", "written before the failover")
        conn.execute_command("WAIT", 1, 5000)
    processes.kill("primary")
    promoted = functools.partial(_master_is, sentinel, replica)
    wait_for("the sentinel to promote the replica", promoted, timeout_s=20)
    with client(replica) as conn:
        conn.set("refplat:tenant:t-after", "written to the new master")
    out = tmp_path / "backups"
    via = ["--redis-sentinel", f"127.0.0.1:{sentinel}", "--redis-master", MASTER]
    created = subprocess.run(
        [sys.executable, "-m", "refplat", "backup", "create", *via, "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == created.returncode, created.stderr
    fresh = free_port()
    processes.redis("fresh", fresh)
    restored = subprocess.run(
        [
            sys.executable,
            "-m",
            "refplat",
            "backup",
            "restore",
            "--redis-url",
            f"redis://127.0.0.1:{fresh}/0",
            "--from",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert 0 == restored.returncode, restored.stderr
    with client(fresh) as conn:
        assert conn.get("refplat:tenant:t-before") == "written before the failover"
        assert conn.get("refplat:tenant:t-after") == "written to the new master"
