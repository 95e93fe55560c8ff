"""Benchmark: load-generator efficiency, as SLP pings per second per Locust worker core.

Real processes: Redis, one api, one controller and one agent hosting ``--servers`` Ready game
servers. One Locust process runs loadtests/players.py (the ping task only, no wait between
pings, ``--users`` players over a moving sample of all the servers) pinned to one core; the
platform runs on the other cores. Over a steady window (after ``--warmup-s``) the benchmark
reads Locust's CPU seconds from /proc and its completed pings from Locust's stats history, and
reports pings per Locust CPU-second: what one worker core can drive. Target: >= 3,000.

For scale, ``wrk`` (one thread, pinned to the same core) loads the api's /healthz on the same
host for ``--duration-s``; without ``wrk`` installed that part is reported as skipped.

    python benchmarks/load_efficiency.py --servers 200 --duration-s 20

Prints a table and saves ``reports/bench/load-efficiency.json`` with the machine's facts.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _refplat_cluster import ADMIN_TOKEN, BenchError, Cluster, Proc, cpu_seconds
from _refplat_load import create_servers, create_tenants
from refplat_perf import machine

from harness.drivers.locust import locust_binary

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_PINGS_PER_CORE_S = 3000.0
POLL_S = 0.05
SETUP_TIMEOUT_S = 180.0
NO_LIMIT = ("--rate-limit-per-token", "0")
WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds used so far by Locust and by the agent, at wall-clock time ``at``."""

    at: float
    locust_s: float
    agent_s: float


@dataclass(frozen=True)
class Row:
    """One Aggregated row of Locust's stats history: cumulative counts at second ``at``."""

    at: int
    ok: int
    failed: int


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--servers", type=int, default=200, help="Ready game servers to ping")
    parser.add_argument("--users", type=int, default=64, help="Locust users (no wait time)")
    parser.add_argument("--duration-s", type=int, default=20, help="Locust run time")
    parser.add_argument("--warmup-s", type=float, default=4.0, help="ignored at the start")
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    args = parser.parse_args(argv)
    if args.servers < 1 or args.users < 1:
        parser.error("--servers and --users must be at least 1")
    if args.duration_s < args.warmup_s + 5:
        parser.error("--duration-s must exceed --warmup-s by at least 5 s")
    return args


def pin(pid: int, cores: set[int]) -> None:
    """Restrict ``pid`` (every thread it has now and makes later) to ``cores``."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), cores)


def cores() -> tuple[set[int], set[int]]:
    """(the load generator's core, the rest); the same single core twice on a 1-core box."""
    allowed = sorted(os.sched_getaffinity(0))
    return {allowed[0]}, set(allowed[1:]) or {allowed[0]}


def start_platform(cluster: Cluster, *, servers: int, rest: set[int]) -> tuple[Proc, Proc, str]:
    """Redis, api, controller and agent on the ``rest`` cores, ``servers`` Ready; (api, agent,
    tenant token)."""
    cluster.start_redis()
    api = cluster.start_api("api-0", *NO_LIMIT)
    cluster.start_controller("a")
    agent = cluster.start_agent("node-1")
    for proc in cluster.procs:
        pin(proc.popen.pid, rest)
    ((tenant, token),) = asyncio.run(
        create_tenants(api.url, admin_token=ADMIN_TOKEN, names=["players"])
    )
    asyncio.run(create_servers(api.url, tokens=[token], count=servers))
    cluster.wait_ready([tenant], servers, timeout_s=SETUP_TIMEOUT_S)
    return api, agent, token


def history(path: Path) -> list[Row]:
    """The Aggregated rows of Locust's stats history (written each second, flushed late)."""
    if not path.exists():
        return []
    rows = [r for r in csv.DictReader(path.read_text().splitlines()) if r["Name"] == "Aggregated"]
    return [
        Row(int(r["Timestamp"]), int(r["Total Request Count"]) - int(r["Total Failure Count"]),
            int(r["Total Failure Count"]))
        for r in rows
        if r["Total Request Count"]
    ]  # fmt: skip


def run_locust(
    args: argparse.Namespace, work: Path, *, api: Proc, agent: Proc, token: str, core: set[int]
) -> tuple[list[Row], list[CpuSample]]:
    """Run the players pinned to ``core``; their stats history and CPU samples every 50 ms."""
    token_file = work / "tenant-token"
    token_file.write_text(token)
    target = work / "target.json"
    target.write_text(json.dumps({"api_url": api.url, "tenant_token_file": str(token_file)}))
    prefix = work / "players"
    argv = [locust_binary(), "-f", str(REPO_ROOT / "loadtests/players.py"), "--headless"]
    argv += ["-u", str(args.users), "-r", str(args.users), "-t", f"{args.duration_s}s"]
    argv += ["--tags", "ping", "--slp-wait-s", "0", "--slp-states", "Ready"]
    argv += ["--slp-sample", str(args.servers), "--slp-list-max", str(args.servers)]
    argv += ["--harness-target-file", str(target), "--csv", str(prefix), "--only-summary"]
    with open(work / "locust.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    samples: list[CpuSample] = []
    try:
        pin(proc.pid, core)
        deadline = time.monotonic() + args.duration_s + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                cpu = cpu_seconds(proc.pid)
            except (FileNotFoundError, ProcessLookupError):
                break  # exited between poll() and the read
            samples.append(CpuSample(time.time(), cpu, cpu_seconds(agent.popen.pid)))
            time.sleep(POLL_S)
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=30)
    if proc.returncode not in (0, 1):
        tail = (work / "locust.log").read_text()[-2000:]
        raise BenchError(f"locust exited with {proc.returncode}:\n{tail}")
    return history(Path(f"{prefix}_stats_history.csv")), samples


def failures(work: Path) -> dict[str, int]:
    """Locust's failure counts of the whole run, by error."""
    path = work / "players_failures.csv"
    if not path.exists():
        return {}
    rows = csv.DictReader(path.read_text().splitlines())
    return {f"{r['Name']}: {r['Error']}": int(r["Occurrences"]) for r in rows}


def cpu_at(samples: list[CpuSample], at: float) -> CpuSample:
    """CPU seconds at wall-clock ``at``, interpolated between the two nearest samples."""
    after = next((i for i, s in enumerate(samples) if s.at >= at), None)
    if after is None or after == 0:
        raise BenchError("the CPU samples do not cover the measuring window")
    a, b = samples[after - 1], samples[after]
    f = (at - a.at) / (b.at - a.at)
    return CpuSample(
        at, a.locust_s + f * (b.locust_s - a.locust_s), a.agent_s + f * (b.agent_s - a.agent_s)
    )


def efficiency(rows: list[Row], samples: list[CpuSample], *, warmup_s: float) -> dict[str, Any]:
    """Figures over the steady window: from ``warmup_s`` after the first history row to the
    second-to-last row (the last is written while Locust stops).

    A row's timestamp is the whole second it was written in, at the same fraction of a second
    each time, so counts between two rows and CPU between their timestamps cover equally long
    intervals; at a steady rate the offset cancels.
    """
    if len(rows) < 3:
        raise BenchError("Locust wrote under 3 rows of stats history; see locust.log")
    start = next((r for r in rows if r.at - rows[0].at >= warmup_s), None)
    end = rows[-2]
    if start is None or end.at - start.at < 2:
        raise BenchError("the steady window is under 2 s; raise --duration-s")
    wall = end.at - start.at
    cpu0, cpu1 = cpu_at(samples, start.at), cpu_at(samples, end.at)
    cpu = cpu1.locust_s - cpu0.locust_s
    pings = end.ok - start.ok
    return {
        "window_s": wall,
        "pings": pings,
        "failures": end.failed - start.failed,
        "pings_per_s": round(pings / wall, 1),
        "locust_cpu_s": round(cpu, 2),
        "locust_core_busy_pct": round(100 * cpu / wall, 1),
        "pings_per_cpu_s": round(pings / cpu, 1) if cpu > 0 else None,
        "agent_core_busy_pct": round(100 * (cpu1.agent_s - cpu0.agent_s) / wall, 1),
    }


def run_wrk(url: str, *, duration_s: int, core: set[int]) -> dict[str, Any]:
    """One wrk thread on ``core`` against ``url``; requests/s and per wrk CPU-second."""
    binary = shutil.which("wrk")
    if binary is None:
        return {"skipped": "wrk is not installed (Debian package `wrk`)"}
    argv = [binary, "-t1", "-c32", f"-d{duration_s}s", url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pin(proc.pid, core)
    out, _ = proc.communicate(timeout=duration_s + 30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped since
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    match = WRK_RATE.search(out)
    if proc.returncode != 0 or match is None:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{out[-1000:]}")
    rate = float(match.group(1))
    return {
        "url": url,
        "requests_per_s": rate,
        "wrk_core_busy_pct": round(100 * cpu / duration_s, 1),
        "requests_per_cpu_s": round(rate * duration_s / cpu, 1) if cpu > 0 else None,
    }


def table(result: dict[str, Any]) -> str:
    eff, wrk = result["players"], result["wrk"]
    per_core = eff["pings_per_cpu_s"] or 0.0
    clean = eff["failures"] <= 0.01 * max(eff["pings"], 1)  # failed pings are cheap ones
    met = "met" if per_core >= TARGET_PINGS_PER_CORE_S and clean else "NOT met"
    rows = [
        ("SLP pings/s (one Locust process)", f"{eff['pings_per_s']:,.0f}"),
        ("  failures in the window", f"{eff['failures']}"),
        ("  Locust core busy", f"{eff['locust_core_busy_pct']} %"),
        ("  agent core busy", f"{eff['agent_core_busy_pct']} %"),
        (
            "SLP pings per Locust CPU-second",
            f"{per_core:,.0f}  (target >= {TARGET_PINGS_PER_CORE_S:,.0f}: {met})",
        ),
    ]
    if "skipped" in wrk:
        rows.append(("wrk (api /healthz), for scale", f"skipped: {wrk['skipped']}"))
    else:
        rows.append(("wrk req/s (api /healthz, 1 thread)", f"{wrk['requests_per_s']:,.0f}"))
        rows.append(("  per wrk CPU-second", f"{wrk['requests_per_cpu_s'] or 0:,.0f}"))
    for error, count in sorted(result["failures_by_error"].items(), key=lambda kv: -kv[1])[:3]:
        rows.append((f"  failed x{count}", error))
    width = max(len(name) for name, _ in rows)
    head = f"load-efficiency: {result['servers']} servers, {result['users']} users"
    return "\n".join([head, *(f"  {name:<{width}}  {value}" for name, value in rows)])


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    core, rest = cores()
    os.sched_setaffinity(0, rest)  # this process and what it starts, except Locust and wrk
    with Cluster(work) as cluster:
        api, agent, token = start_platform(cluster, servers=args.servers, rest=rest)
        rows, samples = run_locust(args, work, api=api, agent=agent, token=token, core=core)
        wrk = run_wrk(f"{api.url}/healthz", duration_s=min(args.duration_s, 10), core=core)
    return {
        "benchmark": "load-efficiency",
        "machine": machine(),
        "servers": args.servers,
        "users": args.users,
        "locust_core": sorted(core),
        # uvloop unless REFPLAT_ASYNCIO_LOOP=asyncio (see refplat.runtime)
        "refplat_loop": os.environ.get("REFPLAT_ASYNCIO_LOOP", "uvloop"),
        "target_pings_per_cpu_s": TARGET_PINGS_PER_CORE_S,
        "players": efficiency(rows, samples, warmup_s=args.warmup_s),
        "failures_by_error": failures(work),
        "wrk": wrk,
    }


def _interrupt(signum: int, _frame: types.FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="load-efficiency-") as tmp:
            result = measure(args, Path(tmp))
    except KeyboardInterrupt:
        print("interrupted; every process was stopped", file=sys.stderr)
        return 130
    except (BenchError, OSError, RuntimeError) as exc:
        print(f"load-efficiency failed: {exc}", file=sys.stderr)
        return 1
    result["wall_s"] = round(time.monotonic() - started, 1)
    print(table(result))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "load-efficiency.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
