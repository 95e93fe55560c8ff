"""Real refplat processes for the benchmarks: Redis, api replicas, controllers, agents, HAProxy.

A :class:`Cluster` owns every process it starts (each in its own process group, so a Ctrl-C
reaches only the benchmark, which then stops them in order) and stops all of them when its
block exits, on every path. Logs go to ``<run dir>/logs``; the tail of each is printed when
the block exits with an error.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import redis

from harness.targets._configs import ReplicaChecks, haproxy_cfg
from harness.util.http import request
from harness.util.net import free_port, wait_for_port

ADMIN_TOKEN = "admin-secret-for-benchmarks"
HAPROXY = "/usr/sbin/haproxy"
STOP_TIMEOUT_S = 5.0
START_TIMEOUT_S = 20.0
P = "refplat:"
T = TypeVar("T")


class BenchError(RuntimeError):
    """A benchmark could not set up or measure what it meant to (the message says which)."""


@dataclass
class Proc:
    """One started process: its name, handle and (for HTTP processes) base URL."""

    name: str
    popen: subprocess.Popen[bytes]
    url: str = ""
    role: str = ""


def wait_until(
    what: str, probe: Callable[[], T | None], *, timeout_s: float, poll_s: float = 0.05
) -> T:
    """Poll ``probe`` until it returns something truthy; raise BenchError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(poll_s)
    raise BenchError(f"{what} did not happen within {timeout_s:g} s")


# The local target's HAProxy checks replicas every 500 ms with a 300 ms timeout so that a
# cut-off replica is dropped fast; on a saturated 2-core machine those checks time out under
# load and eject healthy replicas, which is not what this benchmark measures. Here a replica
# must miss three 2 s checks in a row.
LOAD_CHECKS = ReplicaChecks(inter="1s", timeout="2s", fall=3, connect_timeout="1s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_ok(url: str) -> bool:
    """Whether a GET of ``url`` answers 200 (any transport failure is a no)."""
    return request("GET", url, timeout_s=1.0).ok


class Cluster:
    """Processes of one benchmark run; use as a context manager."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.token_file = run_dir / "admin-token"
        self.token_file.write_text(ADMIN_TOKEN + "\n")
        self.procs: list[Proc] = []
        self.redis_url = ""
        self.redis: redis.Redis | None = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        if self.redis is not None:
            self.redis.close()
        for proc in reversed(self.procs):
            self.stop(proc)
        if exc_type is not None and exc_type is not KeyboardInterrupt:
            for path in sorted(self.logs.iterdir()):
                sys.stderr.write(f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}\n")

    # Starting

    def _spawn(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as log:
            return subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                process_group=0,
            )

    def start_redis(self) -> redis.Redis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise BenchError("redis-server is not installed; run scripts/setup.sh first")
        port = free_port()
        argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.run_dir)]
        self.procs.append(Proc("redis", self._spawn("redis", argv), role="redis"))
        wait_for_port("127.0.0.1", port, timeout_s=10, what="redis-server")
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self.redis = redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=10)
        return self.redis

    def start_refplat(self, name: str, *args: str, wait: bool = True) -> Proc:
        port = free_port()
        argv = [sys.executable, "-m", "refplat", *args, "--redis-url", self.redis_url]
        argv += ["--listen", f"127.0.0.1:{port}"]
        proc = Proc(name, self._spawn(name, argv), f"http://127.0.0.1:{port}", args[0])
        self.procs.append(proc)
        if wait:
            self.wait_healthy(proc)
        return proc

    def start_api(self, instance: str, *extra: str) -> Proc:
        args = ["--instance", instance, "--admin-token-file", str(self.token_file), *extra]
        return self.start_refplat(instance, "api", *args)

    def start_controller(self, controller_id: str, *extra: str) -> Proc:
        return self.start_refplat(
            f"controller-{controller_id}", "controller", "--id", controller_id, *extra
        )

    def start_agent(self, node: str) -> Proc:
        return self.start_refplat(node, "agent", "--node", node)

    def start_haproxy(self, backends: Sequence[Proc]) -> Proc:
        if not os.access(HAPROXY, os.X_OK):
            raise BenchError(f"{HAPROXY} is missing; install haproxy (scripts/setup.sh does)")
        frontend = free_port()
        cfg = self.run_dir / "haproxy.cfg"
        pairs = [(p.name, p.url.removeprefix("http://")) for p in backends]
        cfg.write_text(
            haproxy_cfg(
                frontend=f"127.0.0.1:{frontend}",
                stats=f"127.0.0.1:{free_port()}",
                backends=pairs,
                checks=LOAD_CHECKS,
            )
        )
        argv = [HAPROXY, "-db", "-f", str(cfg)]
        proc = Proc(
            "haproxy", self._spawn("haproxy", argv), f"http://127.0.0.1:{frontend}", "haproxy"
        )
        self.procs.append(proc)
        wait_for_port("127.0.0.1", frontend, timeout_s=10, what="haproxy")
        # Every backend must pass its health check before the load starts.
        wait_until(
            "haproxy to see every api replica up",
            lambda: all(http_ok(f"{proc.url}/readyz") for _ in range(2 * len(backends))),
            timeout_s=START_TIMEOUT_S,
            poll_s=0.5,
        )
        return proc

    def wait_healthy(self, proc: Proc) -> None:
        def probe() -> bool:
            if proc.popen.poll() is not None:
                raise BenchError(f"{proc.name} exited with {proc.popen.returncode}; see its log")
            return http_ok(f"{proc.url}/healthz")

        wait_until(f"{proc.name} /healthz", probe, timeout_s=START_TIMEOUT_S)

    # Stopping

    def kill(self, proc: Proc) -> None:
        """SIGKILL ``proc`` (the fault under test) and reap it."""
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait(timeout=STOP_TIMEOUT_S)

    def stop(self, proc: Proc) -> None:
        """SIGTERM, then SIGKILL after a grace period; never raises for a gone process."""
        if proc.popen.poll() is not None:
            return
        proc.popen.terminate()
        try:
            proc.popen.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait(timeout=STOP_TIMEOUT_S)

    def cpu_seconds(self) -> dict[tuple[str, str], float]:
        """User + system CPU seconds used so far by each running process, by (role, name)."""
        return {
            (proc.role, proc.name): cpu_seconds(proc.popen.pid)
            for proc in self.procs
            if proc.popen.poll() is None
        }

    # Reading the state (straight from Redis, so no rate limit or api replica is in the way)

    def db(self) -> redis.Redis:
        if self.redis is None:
            raise BenchError("start_redis() first")
        return self.redis

    def ready_count(self, tenants: Sequence[str]) -> int:
        with self.db().pipeline(transaction=False) as pipe:
            for tenant in tenants:
                pipe.scard(f"{P}ready:{tenant}")
            return sum(int(n) for n in pipe.execute())

    def wait_ready(self, tenants: Sequence[str], count: int, *, timeout_s: float) -> float:
        """Wait until ``count`` servers of ``tenants`` are Ready; return the seconds it took."""
        started = time.monotonic()
        wait_until(
            f"{count} Ready servers",
            lambda: self.ready_count(tenants) >= count,
            timeout_s=timeout_s,
            poll_s=0.2,
        )
        return time.monotonic() - started

    def node_server_count(self, node: str) -> int:
        return int(self.db().scard(f"{P}node:{node}:servers"))

    def leader_of(self, controllers: Sequence[Proc]) -> Proc | None:
        for proc in controllers:
            if proc.popen.poll() is None:
                resp = request("GET", f"{proc.url}/status", timeout_s=0.5)
                if resp.ok and resp.json().get("leader"):
                    return proc
        return None
