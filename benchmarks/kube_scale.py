"""Benchmark: game-server Pods on KWOK nodes, created through the platform's API (issue 7).

Starts a real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
kwok with ``--nodes`` fake nodes: :class:`harness.targets.KubeCluster`), then Redis, two refplat
api replicas, a controller and ``--agents`` ``refplat kube-agent`` processes (each a platform node
whose game servers are Pods), creates ``--pods`` game servers through the API and waits until
every Pod is Running and every server Ready. Prints and saves (``reports/bench/kube_scale.json``,
one entry per pod count):

- the time from the first create to all Pods Running and to all servers Ready;
- the apiserver's latency SLIs over the ramp, from its own ``/metrics`` (the histogram
  ``apiserver_request_duration_seconds`` before and after, p99 as Prometheus'
  ``histogram_quantile`` computes it): mutating calls (POST, PUT, PATCH, DELETE) overall and the
  slowest (resource, verb) pair; the scheduler's ``scheduler_pod_scheduling_sli_duration_seconds``;
- pod start-up through the API: each Pod's Ready condition time minus its creation time
  (whole seconds: the API's timestamps have second resolution);
- the resident memory (VmRSS) of every process at the end.

The machine is shared (2 cores, up to six agents): the load average is saved beside the figures.

    python benchmarks/kube_scale.py --pods 1000 --nodes 10
    python benchmarks/kube_scale.py --pods 10000 --nodes 100     (make bench-kube-scale)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._refplat_cluster import ADMIN_TOKEN, BenchError, Cluster, Proc, http_ok, wait_until
from benchmarks._refplat_load import create_servers, create_tenants
from harness.targets import KubeCluster, kube_bin_dir

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "reports" / "bench" / "kube_scale.json"
NAMESPACE = "refplat-bench"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LONG_RUNNING = frozenset({"proxy", "attach", "log", "exec", "portforward"})
NO_LIMIT = ("--rate-limit-per-token", "0")
TENANTS = 8
POLL_S = 3.0
START_TIMEOUT_S = 180.0
Buckets = dict[tuple[str, ...], dict[float, float]]


def main() -> int:
    args = _args()
    bin_dir = kube_bin_dir(REPO)
    if bin_dir is None:
        print("kube_scale: the Kubernetes binaries are missing; run scripts/kube-build.sh")
        return 2
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="kube-scale-") as tmp:
        work = Path(tmp)
        with (
            KubeCluster(
                bin_dir=bin_dir,
                work_dir=work / "kube",
                nodes=args.nodes,
                ready_timeout_s=300 + args.nodes,
            ) as kube,
            Cluster(work / "refplat") as plat,
        ):
            figures = run(kube, plat, args)
    figures["machine"] = {
        "cores": os.cpu_count(),
        "loadavg_before": [round(x, 1) for x in load_before],
        "loadavg_after": [round(x, 1) for x in os.getloadavg()],
        "note": "shared machine: up to six agents run tests and benchmarks at the same time",
    }
    save(figures)
    report(figures)
    return 0


def run(kube: KubeCluster, plat: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    with kube.api_client() as api:
        core = k8s.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": NAMESPACE}}, _request_timeout=10)
        plat.start_redis()
        agents = [
            plat.start_refplat(
                f"kube-agent-{i}",
                *("kube-agent", "--namespace", NAMESPACE, "--node", f"kube-pool-{i}"),
                *("--kubeconfig", str(kube.kubeconfig), "--node-selector", "type=kwok"),
                wait=False,
            )
            for i in range(args.agents)
        ]
        controller = plat.start_refplat("controller-c-1", "controller", "--id", "c-1", wait=False)
        apis = [
            plat.start_refplat(
                f"api-{i}",
                *("api", "--instance", f"api-{i}", "--admin-token-file", str(plat.token_file)),
                *NO_LIMIT,
                wait=False,
            )
            for i in range(2)
        ]
        wait_healthy([*agents, controller, *apis])
        names = [f"bench-{i}" for i in range(TENANTS)]
        pairs = asyncio.run(create_tenants(apis[0].url, admin_token=ADMIN_TOKEN, names=names))
        tenants, tokens = [p[0] for p in pairs], [p[1] for p in pairs]
        api_before = scrape(kube, f"127.0.0.1:{kube.port}")
        sched_before = scrape(kube, f"127.0.0.1:{kube.scheduler_port}")
        print(f"kube_scale: creating {args.pods} game servers through the API", flush=True)
        started = time.monotonic()
        asyncio.run(create_all([a.url for a in apis], tokens, args.pods))
        created_s = time.monotonic() - started
        print(f"  created through the API in {created_s:.1f} s", flush=True)
        running_s, ready_s = wait_all(core, plat, tenants, args, started)
        api_after = scrape(kube, f"127.0.0.1:{kube.port}")
        sched_after = scrape(kube, f"127.0.0.1:{kube.scheduler_port}")
        startup = pod_startup_s(core)
        rss = {name: mib(b) for name, b in kube.rss_bytes().items()}
        rss |= {p.name: mib(rss_bytes(p.popen.pid)) for p in plat.procs if p.popen.poll() is None}
    return {
        "pods": args.pods,
        "nodes": args.nodes,
        "kube_agents": len(agents),
        "create_through_api_s": round(created_s, 1),
        "all_running_s": round(running_s, 1),
        "all_ready_s": round(ready_s, 1),
        "apiserver_sli_during_ramp": apiserver_slis(api_before, api_after),
        "scheduler_pod_scheduling_sli_p99_s": quantile(
            delta(sched_before, sched_after, "scheduler_pod_scheduling_sli_duration_seconds", ())
        ),
        "pod_startup_via_api_s": startup,
        "rss_mib": rss,
        "measured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }


def wait_healthy(procs: list[Proc]) -> None:
    """Every process answers /healthz (a loaded machine takes many seconds to import them)."""
    for proc in procs:

        def probe(proc: Proc = proc) -> bool:
            if proc.popen.poll() is not None:
                raise BenchError(f"{proc.name} exited with {proc.popen.returncode}; see its log")
            return http_ok(f"{proc.url}/healthz")

        wait_until(f"{proc.name} /healthz", probe, timeout_s=START_TIMEOUT_S, poll_s=0.2)


async def create_all(apis: list[str], tokens: list[str], count: int) -> None:
    shares = [count // len(apis) + (1 if i < count % len(apis) else 0) for i in range(len(apis))]
    await asyncio.gather(
        *(
            create_servers(url, tokens=tokens, count=n, concurrency=16)
            for url, n in zip(apis, shares, strict=True)
        )
    )


def wait_all(
    core: k8s.CoreV1Api,
    plat: Cluster,
    tenants: list[str],
    args: argparse.Namespace,
    started: float,
) -> tuple[float, float]:
    """Poll until every Pod is Running and every server Ready; the seconds to each."""
    running_s = ready_s = 0.0
    deadline = started + args.timeout_s
    while not (running_s and ready_s):
        if time.monotonic() > deadline:
            raise BenchError(
                f"not all {args.pods} pods Running / servers Ready within {args.timeout_s:g} s"
            )
        running, ready = count_running(core), plat.ready_count(tenants)
        now = time.monotonic() - started
        running_s = running_s or (now if running >= args.pods else 0.0)
        ready_s = ready_s or (now if ready >= args.pods else 0.0)
        print(f"  {now:6.0f} s: {running} pods Running, {ready} servers Ready", flush=True)
        time.sleep(POLL_S)
    return running_s, ready_s


def count_running(core: k8s.CoreV1Api) -> int:
    """Running Pods, counted from the apiserver's watch cache (resourceVersion=0), raw JSON."""
    resp = core.list_namespaced_pod(
        NAMESPACE,
        field_selector="status.phase=Running",
        resource_version="0",
        _preload_content=False,
        _request_timeout=60,
    )
    return len(json.loads(resp.data)["items"])


def pod_startup_s(core: k8s.CoreV1Api) -> dict[str, float]:
    """Creation to the Ready condition of every Pod, as the API records them (whole seconds)."""
    resp = core.list_namespaced_pod(NAMESPACE, _preload_content=False, _request_timeout=120)
    spans = []
    for pod in json.loads(resp.data)["items"]:
        created = _time(pod["metadata"]["creationTimestamp"])
        ready = [
            c["lastTransitionTime"]
            for c in pod.get("status", {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"
        ]
        if ready:
            spans.append(_time(ready[0]) - created)
    spans.sort()
    if not spans:
        return {}
    return {
        "pods": len(spans),
        "p50": spans[len(spans) // 2],
        "p99": spans[min(len(spans) - 1, int(len(spans) * 0.99))],
        "max": spans[-1],
    }


def scrape(kube: KubeCluster, address: str) -> str:
    """One ``/metrics`` page, as Prometheus' identity (``system:monitoring``)."""
    context = ssl.create_default_context(cafile=str(kube.pki.ca.cert))
    if address != f"127.0.0.1:{kube.port}":  # the scheduler's self-signed serving certificate
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(str(kube.monitoring_client.cert), str(kube.monitoring_client.key))
    with urllib.request.urlopen(f"https://{address}/metrics", timeout=60, context=context) as r:
        return str(r.read().decode())


def apiserver_slis(before: str, after: str) -> dict[str, Any]:
    """p99 of mutating calls over the ramp: overall and the slowest (resource, verb) pair."""
    name = "apiserver_request_duration_seconds"
    overall = quantile(delta(before, after, name, (), mutating_only=True))
    pairs = delta(before, after, name, ("resource", "verb"), mutating_only=True)
    per_pair = {
        "/".join(key): (quantile({(): buckets}), max(buckets.values()))
        for key, buckets in pairs.items()
    }
    worst = max(per_pair.items(), key=lambda kv: kv[1][0] or 0, default=("", (None, 0)))
    return {
        "mutating_p99_s": overall,
        "mutating_calls": int(max(sum_buckets(pairs).values(), default=0)),
        "worst_pair": worst[0],
        "worst_pair_p99_s": worst[1][0],
        "per_pair_p99_s": {k: v[0] for k, v in sorted(per_pair.items())},
        "slo_mutating_p99_s": 1.0,
    }


def buckets_of(text: str, name: str, by: tuple[str, ...], *, mutating_only: bool) -> Buckets:
    """Cumulative bucket counts of histogram ``name``, summed by the labels ``by``."""
    out: Buckets = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name != f"{name}_bucket":
                continue
            labels = sample.labels
            if mutating_only and (
                labels.get("verb") not in MUTATING or labels.get("subresource") in LONG_RUNNING
            ):
                continue
            key = tuple(labels.get(label, "") for label in by)
            le = float(labels["le"])
            out.setdefault(key, {})
            out[key][le] = out[key].get(le, 0.0) + sample.value
    return out


def delta(
    before: str, after: str, name: str, by: tuple[str, ...], *, mutating_only: bool = False
) -> Buckets:
    """The bucket counts observed between two scrapes."""
    old = buckets_of(before, name, by, mutating_only=mutating_only)
    new = buckets_of(after, name, by, mutating_only=mutating_only)
    return {
        key: {le: count - old.get(key, {}).get(le, 0.0) for le, count in buckets.items()}
        for key, buckets in new.items()
    }


def sum_buckets(groups: Buckets) -> dict[float, float]:
    total: dict[float, float] = {}
    for buckets in groups.values():
        for le, count in buckets.items():
            total[le] = total.get(le, 0.0) + count
    return total


def quantile(groups: Buckets, q: float = 0.99) -> float | None:
    """Prometheus' ``histogram_quantile`` over the sum of ``groups``; None with no samples."""
    buckets = sorted(sum_buckets(groups).items())
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return round(lower, 3)
            return round(lower + (le - lower) * (rank - below) / max(count - below, 1e-9), 3)
        lower, below = le, count
    return round(lower, 3)


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def mib(value: int) -> float:
    return round(value / 2**20, 1)


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def save(figures: dict[str, Any]) -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    try:
        runs = json.loads(OUT.read_text())
    except (OSError, ValueError):
        runs = {}
    runs[f"{figures['pods']}-pods-{figures['nodes']}-nodes"] = figures
    OUT.write_text(json.dumps(runs, indent=2, sort_keys=True) + "\n")


def report(f: dict[str, Any]) -> None:
    sli = f["apiserver_sli_during_ramp"]
    lines = [
        f"{f['pods']} game-server pods on {f['nodes']} KWOK nodes, {f['kube_agents']} kube-agents",
        f"  created through the API  {f['create_through_api_s']:>8} s",
        f"  all pods Running         {f['all_running_s']:>8} s",
        f"  all servers Ready        {f['all_ready_s']:>8} s",
        f"  apiserver mutating p99   {sli['mutating_p99_s']} s over {sli['mutating_calls']} calls"
        f" (worst pair {sli['worst_pair']}: {sli['worst_pair_p99_s']} s; SLO <= 1 s)",
        f"  scheduler SLI p99        {f['scheduler_pod_scheduling_sli_p99_s']} s (SLO <= 5 s)",
        f"  pod start-up via the API {f['pod_startup_via_api_s']}",
        "  RSS MiB: " + ", ".join(f"{k} {v}" for k, v in sorted(f["rss_mib"].items())),
        f"  load average before/after {f['machine']['loadavg_before']} / "
        f"{f['machine']['loadavg_after']} on {f['machine']['cores']} cores (shared machine)",
        f"  saved to {OUT}",
    ]
    print("\n".join(lines))


def _args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=10_000, help="game servers (default 10000)")
    parser.add_argument("--nodes", type=int, default=100, help="KWOK nodes (default 100)")
    parser.add_argument("--agents", type=int, default=2, help="kube-agents (default 2)")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="for all Running")
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.pods < 1 or args.nodes < 1 or args.agents < 1:
        parser.error("--pods, --nodes and --agents must be at least 1")
    if args.pods > args.nodes * 110:
        parser.error(f"{args.pods} pods do not fit on {args.nodes} nodes of 110 pods each")
    return args


if __name__ == "__main__":
    sys.exit(main())
