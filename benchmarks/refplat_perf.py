"""Benchmark: the reference platform's speed targets, on real processes over one Redis.

- ``--allocation``: HAProxy in front of ``--api-replicas`` (2) api replicas, 1 controller,
  3 agents hosting ``--servers`` Ready servers; asyncio workers allocate a session and end
  it (recycling the server: two requests per allocation) for ``--duration-s``; with
  ``--allocate-only`` they allocate from the pool of Ready servers and keep the sessions (one
  request per allocation, as a matchmaker allocates; the pool must hold every allocation of
  the run, else 409s); with ``--audit`` the api replicas and the controller write the sealed
  audit log (a record per mutation, as the local target's ``topology.audit`` runs them).
  Target: >= 500 allocations/s, p99 <= 250 ms.
- ``--memory``: one agent hosting each of ``--sizes`` servers; its VmRSS. Target: <= 150 MiB
  per 1,000 servers.
- ``--lost-node``: ``--lost-servers`` Ready servers on one node whose agent is SIGKILLed;
  time until the controller marks the node Lost (target <= 10 s) and until every server is
  Ready again on the other nodes (target <= 30 s).
- ``--failover``: SIGKILL the leader controller ``--repeat`` times; time until the standby
  holds the lease and until it completes its first reconcile (target <= 5 s).
- ``--scale``: ``--scale-servers`` (10,000) servers created through 2 api replicas onto
  ``--scale-agents`` agents; time until all are Ready (target <= 120 s), controller RSS
  (target <= 1 GiB) and agent RSS per 1,000 servers (target <= 150 MiB) at that scale.

With no flag, all five run. Each prints a table and saves
``reports/bench/refplat-<name>.json`` with the machine's facts.

    python benchmarks/refplat_perf.py --allocation --duration-s 20
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _refplat_cluster import (
    ADMIN_TOKEN,
    BenchError,
    Cluster,
    P,
    Proc,
    cpu_seconds,
    wait_until,
)
from _refplat_load import create_servers, create_tenants, percentile, run_load

from harness.util.http import request
from refplat.controller import DEFAULT_HEARTBEAT_TIMEOUT_S, DEFAULT_LEASE_TTL_S

MIB = 1024 * 1024
AUDIT_WRITE_ERRORS = re.compile(r"^refplat_audit_write_errors_total (\S+)$", re.M)
FIRST_RECONCILE = re.compile(
    r"^refplat_controller_leader_first_reconcile_timestamp_seconds (\S+)$", re.M
)
TARGETS = {
    "allocations_per_s": 500.0,
    "allocate_p99_ms": 250.0,
    "agent_mib_per_1000": 150.0,
    "node_lost_s": 10.0,
    "reschedule_s": 30.0,
    "failover_s": 5.0,
    "all_ready_s": 120.0,
    "controller_rss_mib": 1024.0,
}
SETUP_TIMEOUT_S = 180.0
RSS_WINDOW_S = 3.0
NO_LIMIT = ("--rate-limit-per-token", "0")


def machine() -> dict[str, Any]:
    """Facts that make the figures comparable."""
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # Other work on the machine skews every figure; this says how busy it was.
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
    }


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def seed(cluster: Cluster, api: Proc, *, tenants: int, servers: int) -> tuple[list[str], list[str]]:
    """Create tenants and servers through ``api``; wait until all are Ready; (ids, tokens)."""
    names = [f"bench-{i}" for i in range(tenants)]
    pairs = asyncio.run(create_tenants(api.url, admin_token=ADMIN_TOKEN, names=names))
    ids, tokens = [p[0] for p in pairs], [p[1] for p in pairs]
    asyncio.run(create_servers(api.url, tokens=tokens, count=servers))
    cluster.wait_ready(ids, servers, timeout_s=SETUP_TIMEOUT_S)
    return ids, tokens


# Allocation throughput and latency through HAProxy


def audit_flags(cluster: Cluster, args: argparse.Namespace) -> list[str]:
    """``--audit-key-file`` of a new key file in the run's directory with ``--audit``."""
    if not args.audit:
        return []
    path = cluster.run_dir / "audit-keys"
    argv = [sys.executable, "-m", "refplat", "audit", "keygen", "--out", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise BenchError(f"refplat audit keygen failed: {done.stderr.strip()}")
    return ["--audit-key-file", str(path)]


def audit_write_errors(api: Proc) -> int:
    """How many audit events ``api`` failed to append (its counter, from /metrics)."""
    resp = request("GET", f"{api.url}/metrics", timeout_s=2.0)
    found = AUDIT_WRITE_ERRORS.search(resp.body.decode()) if resp.ok else None
    if found is None:
        raise BenchError(f"{api.name} /metrics has no refplat_audit_write_errors_total")
    return int(float(found.group(1)))


def bench_allocation(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    cluster.start_redis()
    agents = [cluster.start_agent(f"node-{i}") for i in range(1, 4)]
    audit = audit_flags(cluster, args)
    cluster.start_controller("c-1", *audit)
    apis = [cluster.start_api(f"api-{i}", *audit) for i in range(args.api_replicas)]
    haproxy = cluster.start_haproxy(apis)
    # Enough tenants that the default per-token limit (200/s) is not what is measured.
    started = time.monotonic()
    _, tokens = seed(cluster, apis[0], tenants=8, servers=args.servers)
    setup_s = time.monotonic() - started
    runs = [
        load_run(cluster, haproxy.url, tokens, concurrency=n, args=args) for n in args.concurrency
    ]
    mode = "allocate only" if args.allocate_only else "allocate + end"
    mode += ", audited" if args.audit else ""
    dropped = sum(audit_write_errors(api) for api in apis) if args.audit else 0
    print(
        f"allocation through HAProxy ({mode}), {len(apis)} api replica(s), {len(agents)} agents, "
        f"{args.servers} servers, setup {setup_s:.1f} s"
    )
    print(
        f"{'conc':>5} {'alloc/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'end p99':>8}  errors  target"
    )
    for r in runs:
        print(
            f"{r['concurrency']:>5} {r['allocations_per_s']:>8} {r['allocate_p50_ms']:>7} "
            f"{r['allocate_p95_ms']:>7} {r['allocate_p99_ms']:>7} {r['end_p99_ms']:>8}  "
            f"{sum(r['errors'].values()):>6}  {verdict(r['target_met'])}"
        )
        print(f"      CPU cores used: {r['cpu_cores_used']}")
    if args.audit:  # mutations that happened but whose audit record was never appended
        print(f"      audit events not written (refplat_audit_write_errors_total): {dropped}")
    return {
        "mode": mode,
        "audit": args.audit,
        "audit_write_errors": dropped,
        "servers": args.servers,
        "api_replicas": len(apis),
        "agents": len(agents),
        "setup_s": round(setup_s, 1),
        "targets": {k: TARGETS[k] for k in ("allocations_per_s", "allocate_p99_ms")},
        "runs": runs,
    }


def load_run(
    cluster: Cluster, url: str, tokens: list[str], *, concurrency: int, args: argparse.Namespace
) -> dict[str, Any]:
    """One allocate/end run at ``concurrency``: figures, and CPU used by each part meanwhile."""
    cpu_before, self_before, wall_before = cluster.cpu_seconds(), _self_cpu(), time.monotonic()
    load = run_load(
        url,
        tokens=tokens,
        concurrency=concurrency,
        duration_s=args.duration_s,
        warmup_s=2.0,
        end=not args.allocate_only,
    )
    wall = time.monotonic() - wall_before
    used: dict[str, float] = {"load generator": _self_cpu() - self_before}
    for (role, name), seconds in cluster.cpu_seconds().items():
        used[role] = used.get(role, 0.0) + seconds - cpu_before.get((role, name), 0.0)
    rate = load.allocated / load.duration_s
    p99 = percentile(load.allocate_latencies, 99)
    return {
        "concurrency": concurrency,
        "duration_s": load.duration_s,
        "allocations": load.allocated,
        "ends": load.ended,
        "allocations_per_s": round(rate, 1),
        "allocate_p50_ms": ms(percentile(load.allocate_latencies, 50)),
        "allocate_p95_ms": ms(percentile(load.allocate_latencies, 95)),
        "allocate_p99_ms": ms(p99),
        "end_p99_ms": ms(percentile(load.end_latencies, 99)),
        "errors": dict(load.errors),
        "cpu_cores_used": {role: round(sec / wall, 2) for role, sec in sorted(used.items())},
        "target_met": rate >= TARGETS["allocations_per_s"]
        and p99 * 1000 <= TARGETS["allocate_p99_ms"]
        and not load.errors,
    }


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# Agent memory per 1,000 servers


def vm_rss_mib(pid: int) -> float:
    """The resident set size of ``pid`` from /proc/<pid>/status, in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.M)
    if found is None:
        raise BenchError(f"no VmRSS in /proc/{pid}/status")
    return int(found.group(1)) * 1024 / MIB


def settled_rss(pid: int) -> float:
    """The largest VmRSS over a few seconds of steady state (the agent keeps polling)."""
    samples = []
    deadline = time.monotonic() + RSS_WINDOW_S
    while time.monotonic() < deadline:
        samples.append(vm_rss_mib(pid))
        time.sleep(0.25)
    return max(samples)


def bench_memory(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    cluster.start_redis()
    agent = cluster.start_agent("node-1")
    cluster.start_controller("c-1")
    api = cluster.start_api("api-0", *NO_LIMIT)
    ids, tokens = seed(cluster, api, tenants=1, servers=0)
    baseline = settled_rss(agent.popen.pid)
    rows = []
    hosted = 0
    for size in sorted(args.sizes):
        asyncio.run(create_servers(api.url, tokens=tokens, count=size - hosted))
        ready_s = cluster.wait_ready(ids, size, timeout_s=SETUP_TIMEOUT_S)
        hosted = size
        cpu_before = cpu_seconds(agent.popen.pid)
        rss = settled_rss(agent.popen.pid)
        idle_cpu = (cpu_seconds(agent.popen.pid) - cpu_before) / RSS_WINDOW_S
        fds = len(os.listdir(f"/proc/{agent.popen.pid}/fd"))
        per_1000 = rss / (size / 1000)
        rows.append(
            {
                "servers": size,
                "rss_mib": round(rss, 1),
                "mib_per_1000": round(per_1000, 1),
                "marginal_mib_per_1000": round((rss - baseline) / (size / 1000), 1),
                "open_fds": fds,
                "agent_cpu_cores_idle": round(idle_cpu, 2),
                "ready_after_s": round(ready_s, 1),
                "target_met": per_1000 <= TARGETS["agent_mib_per_1000"],
            }
        )
    print(f"agent memory (VmRSS), baseline with no servers {baseline:.1f} MiB")
    print(
        f"{'servers':>8} {'RSS MiB':>8} {'MiB/1000':>9} {'marginal':>9} {'fds':>6} "
        f"{'ready s':>8} {'idle CPU':>8}  target"
    )
    for r in rows:
        print(
            f"{r['servers']:>8} {r['rss_mib']:>8} {r['mib_per_1000']:>9} "
            f"{r['marginal_mib_per_1000']:>9} {r['open_fds']:>6} {r['ready_after_s']:>8} "
            f"{r['agent_cpu_cores_idle']:>8}  "
            f"{verdict(r['target_met'])}"
        )
    return {
        "baseline_rss_mib": round(baseline, 1),
        "targets": {"agent_mib_per_1000": TARGETS["agent_mib_per_1000"]},
        "rows": rows,
    }


# Lost-node detection and rescheduling


def bench_lost_node(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    db = cluster.start_redis()
    doomed = cluster.start_agent("node-1")
    audit = audit_flags(cluster, args)
    cluster.start_controller("c-1", *audit)
    api = cluster.start_api("api-0", *NO_LIMIT, *audit)
    ids, _ = seed(cluster, api, tenants=1, servers=args.lost_servers)
    if cluster.node_server_count("node-1") != args.lost_servers:
        raise BenchError("not every server landed on node-1")
    survivors = [cluster.start_agent(f"node-{i}") for i in (2, 3)]
    wait_until(
        "the new nodes to heartbeat",
        lambda: all(db.hget(f"{P}node:{p.name}", "state") == "Live" for p in survivors),
        timeout_s=10,
    )
    heartbeat_at = float(db.hget(f"{P}node:node-1", "heartbeat_at") or 0)
    killed_redis_time = _redis_now(cluster)
    killed = time.monotonic()
    cluster.kill(doomed)
    wait_until(
        "node-1 to be marked Lost",
        lambda: db.hget(f"{P}node:node-1", "state") == "Lost",
        timeout_s=60,
        poll_s=0.02,
    )
    lost_s = time.monotonic() - killed
    wait_until(
        f"{args.lost_servers} servers Ready elsewhere",
        lambda: cluster.ready_count(ids) >= args.lost_servers,
        timeout_s=120,
        poll_s=0.05,
    )
    ready_s = time.monotonic() - killed
    moved = {p.name: cluster.node_server_count(p.name) for p in survivors}
    result = {
        "servers": args.lost_servers,
        "heartbeat_age_at_kill_s": round(killed_redis_time - heartbeat_at, 2),
        "node_lost_after_kill_s": round(lost_s, 2),
        "all_ready_after_kill_s": round(ready_s, 2),
        "reschedule_after_lost_s": round(ready_s - lost_s, 2),
        "servers_per_surviving_node": moved,
        "targets": {k: TARGETS[k] for k in ("node_lost_s", "reschedule_s")},
        "node_lost_target_met": lost_s <= TARGETS["node_lost_s"],
        "reschedule_target_met": ready_s - lost_s <= TARGETS["reschedule_s"],
    }
    print(
        f"lost node with {args.lost_servers} servers "
        f"(heartbeat timeout {DEFAULT_HEARTBEAT_TIMEOUT_S:g} s, agent SIGKILLed)"
    )
    print(
        f"  marked Lost after        {result['node_lost_after_kill_s']:6.2f} s  "
        f"(last heartbeat {result['heartbeat_age_at_kill_s']} s before the kill)  "
        f"target {TARGETS['node_lost_s']:g} s {verdict(bool(result['node_lost_target_met']))}"
    )
    print(
        f"  all Ready again after    {result['all_ready_after_kill_s']:6.2f} s from the kill, "
        f"{result['reschedule_after_lost_s']:.2f} s from Lost  "
        f"target {TARGETS['reschedule_s']:g} s {verdict(bool(result['reschedule_target_met']))}"
    )
    print(f"  servers now per node     {moved}")
    return result


def _redis_now(cluster: Cluster) -> float:
    seconds, micros = cluster.db().time()
    return float(seconds) + float(micros) / 1e6


# Leader failover


def first_reconcile_at(proc: Proc) -> float:
    resp = request("GET", f"{proc.url}/metrics", timeout_s=0.5)
    found = FIRST_RECONCILE.search(resp.body.decode()) if resp.ok else None
    return float(found.group(1)) if found else 0.0


def kill_leader(cluster: Cluster, *, leader: Proc, standby: Proc) -> dict[str, float]:
    """SIGKILL ``leader``; seconds until ``standby`` holds the lease and has reconciled."""
    killed_wall = time.time()
    cluster.kill(leader)
    wait_until(
        "the standby to take the lease",
        lambda: cluster.leader_of([standby]),
        timeout_s=30,
        poll_s=0.02,
    )
    lease_s = time.time() - killed_wall
    first = wait_until(
        "the standby's first reconcile",
        lambda: first_reconcile_at(standby),
        timeout_s=30,
        poll_s=0.02,
    )
    return {"lease_s": round(lease_s, 3), "first_reconcile_s": round(first - killed_wall, 3)}


def bench_failover(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    cluster.start_redis()
    cluster.start_agent("node-1")
    controllers = {name: cluster.start_controller(name) for name in ("c-1", "c-2")}
    api = cluster.start_api("api-0", *NO_LIMIT)
    seed(cluster, api, tenants=1, servers=args.failover_servers)
    samples = []
    for _ in range(args.repeat):
        live = list(controllers.values())
        leader = wait_until("a leader", functools.partial(cluster.leader_of, live), timeout_s=30)
        standby = next(p for p in live if p is not leader)
        samples.append(kill_leader(cluster, leader=leader, standby=standby))
        # The killed one comes back as the new standby for the next round.
        name = leader.name.removeprefix("controller-")
        controllers[name] = cluster.start_controller(name)
    recon = [s["first_reconcile_s"] for s in samples]
    leases = [s["lease_s"] for s in samples]
    result = {
        "repeat": args.repeat,
        "servers": args.failover_servers,
        "lease_ttl_s": DEFAULT_LEASE_TTL_S,
        "samples": samples,
        "lease_p50_s": round(statistics.median(leases), 3),
        "lease_max_s": round(max(leases), 3),
        "first_reconcile_p50_s": round(statistics.median(recon), 3),
        "first_reconcile_max_s": round(max(recon), 3),
        "targets": {"failover_s": TARGETS["failover_s"]},
        "target_met": max(recon) <= TARGETS["failover_s"],
    }
    print(
        f"leader failover, SIGKILL x{args.repeat}, lease TTL {DEFAULT_LEASE_TTL_S:g} s, "
        f"{args.failover_servers} servers"
    )
    print(f"{'':24} {'p50 s':>7} {'max s':>7}")
    print(f"{'standby holds the lease':24} {result['lease_p50_s']:>7} {result['lease_max_s']:>7}")
    print(
        f"{'first reconcile done':24} {result['first_reconcile_p50_s']:>7} "
        f"{result['first_reconcile_max_s']:>7}  target {TARGETS['failover_s']:g} s "
        f"{verdict(bool(result['target_met']))}"
    )
    return result


# 10,000 game servers (issue 5): time to all Ready, and what each process holds at that scale


def bench_scale(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    cluster.start_redis()
    agents = [cluster.start_agent(f"node-{i}") for i in range(1, args.scale_agents + 1)]
    controller = cluster.start_controller("c-1")
    apis = [cluster.start_api(f"api-{i}", *NO_LIMIT) for i in range(2)]
    ids, tokens = seed(cluster, apis[0], tenants=8, servers=0)
    procs = [*agents, controller, *apis]
    cpu_before = {p.name: cpu_seconds(p.popen.pid) for p in procs}
    started = time.monotonic()

    async def create_all() -> None:
        per_api = args.scale_servers // len(apis)
        counts = [per_api + (1 if i < args.scale_servers % len(apis) else 0) for i in range(2)]
        await asyncio.gather(
            *(
                create_servers(api.url, tokens=tokens, count=n, concurrency=16)
                for api, n in zip(apis, counts, strict=True)
            )
        )

    asyncio.run(create_all())
    created_s = time.monotonic() - started
    print(f"created {args.scale_servers} servers through the API in {created_s:.1f} s")
    ready_s = created_s + cluster.wait_ready(ids, args.scale_servers, timeout_s=SETUP_TIMEOUT_S)
    wall = time.monotonic() - started
    cpu = {p.name: round(cpu_seconds(p.popen.pid) - cpu_before[p.name], 1) for p in procs}
    controller_rss = settled_rss(controller.popen.pid)
    agent_rss = [settled_rss(a.popen.pid) for a in agents]
    hosted = [cluster.node_server_count(a.name) for a in agents]
    per_1000 = [rss / max(n / 1000, 0.001) for rss, n in zip(agent_rss, hosted, strict=True)]
    figures = {
        "servers": args.scale_servers,
        "agents": len(agents),
        "create_s": round(created_s, 1),
        "all_ready_s": round(ready_s, 1),
        "controller_rss_mib": round(controller_rss, 1),
        "agent_rss_mib": [round(r, 1) for r in agent_rss],
        "agent_servers": hosted,
        "agent_mib_per_1000": [round(r, 1) for r in per_1000],
        "cpu_seconds_during_ramp": cpu,
        "wall_s_of_ramp": round(wall, 1),
        "targets": {
            "all_ready_s": TARGETS["all_ready_s"],
            "controller_rss_mib": TARGETS["controller_rss_mib"],
            "agent_mib_per_1000": TARGETS["agent_mib_per_1000"],
        },
        "target_met": ready_s <= TARGETS["all_ready_s"]
        and controller_rss <= TARGETS["controller_rss_mib"]
        and max(per_1000) <= TARGETS["agent_mib_per_1000"],
    }
    print(f"{args.scale_servers} game servers on {len(agents)} agents: all Ready {ready_s:.1f} s")
    print(f"  controller RSS {controller_rss:.1f} MiB; agents {figures['agent_rss_mib']} MiB")
    print(f"  hosting {hosted} servers = {figures['agent_mib_per_1000']} MiB per 1,000")
    print(f"  CPU seconds during the ramp: {cpu}")
    print(f"  target: {verdict(bool(figures['target_met']))}")
    return figures


BENCHMARKS: dict[str, Callable[[Cluster, argparse.Namespace], dict[str, Any]]] = {
    "allocation": bench_allocation,
    "memory": bench_memory,
    "lost-node": bench_lost_node,
    "failover": bench_failover,
    "scale": bench_scale,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    for name in BENCHMARKS:
        parser.add_argument(f"--{name}", action="store_true", help=f"run the {name} benchmark")
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    parser.add_argument("--servers", type=_count, default=3000, help="allocation: Ready servers")
    parser.add_argument("--duration-s", type=float, default=20.0, help="allocation: per run")
    parser.add_argument(
        "--api-replicas", type=_count, default=2, help="allocation: api replicas behind HAProxy"
    )
    parser.add_argument(
        "--allocate-only",
        action="store_true",
        help="allocation: keep the sessions (needs --servers >= every allocation of the run)",
    )
    parser.add_argument(
        "--audit",
        action="store_true",
        help="allocation, lost-node: the platform writes its audit log",
    )
    parser.add_argument(
        "--concurrency", type=_counts, default=[32], help="allocation: workers, e.g. 16,64"
    )
    parser.add_argument("--sizes", type=_counts, default=[1000, 2000, 5000], help="memory")
    parser.add_argument("--lost-servers", type=_count, default=1000, help="lost-node")
    parser.add_argument("--failover-servers", type=_count, default=1000, help="failover")
    parser.add_argument("--repeat", type=_count, default=5, help="failover: kills")
    parser.add_argument("--scale-servers", type=_count, default=10_000, help="scale: servers")
    parser.add_argument("--scale-agents", type=_count, default=5, help="scale: node agents")
    parser.add_argument("--keep-logs", action="store_true", help="keep each run's process logs")
    args = parser.parse_args(argv)
    if not 1 <= args.duration_s <= 600:
        parser.error(f"--duration-s must be between 1 and 600 seconds, got {args.duration_s:g}")
    return args


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _counts(text: str) -> list[int]:
    return [_count(part.strip()) for part in text.split(",")]


def _interrupt(signum: int, _frame: types.FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def report_stem(name: str, args: argparse.Namespace) -> str:
    """The report's name: the benchmark's, and for allocation its mode and replica count."""
    if name != "allocation":
        return name
    mode = "-allocate-only" if args.allocate_only else ""
    replicas = "" if args.api_replicas == 2 else f"-{args.api_replicas}api"
    audit = "-audit" if args.audit else ""
    return f"{name}{mode}{replicas}{audit}"


def run_one(name: str, args: argparse.Namespace) -> Path:
    """Run one benchmark on fresh processes; save and return its JSON report."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"refplat-bench-{name}-") as tmp:
        run_dir = Path(tmp)
        if args.keep_logs:
            run_dir = (args.out / f"refplat-{name}-logs").resolve()
        with Cluster(run_dir) as cluster:
            figures = BENCHMARKS[name](cluster, args)
    result = {
        "benchmark": f"refplat-{name}",
        "machine": machine(),
        "wall_s": round(time.monotonic() - started, 1),
        **figures,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path: Path = args.out / f"refplat-{report_stem(name, args)}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {path}\n")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    chosen = [name for name in BENCHMARKS if getattr(args, name.replace("-", "_"))]
    failed = []
    try:
        for name in chosen or list(BENCHMARKS):
            try:
                run_one(name, args)
            except (BenchError, RuntimeError, OSError) as exc:
                print(f"refplat-{name} failed: {exc}", file=sys.stderr)
                failed.append(name)
            except Exception:  # a bug in the benchmark: say which one, go on with the next
                traceback.print_exc()
                print(f"refplat-{name} failed unexpectedly (traceback above)", file=sys.stderr)
                failed.append(name)
    except KeyboardInterrupt:
        print("interrupted; every process was stopped", file=sys.stderr)
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
