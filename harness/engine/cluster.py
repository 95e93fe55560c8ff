"""``harness cluster up|down|status``: a local Kubernetes control plane that outlives the command.

``up`` builds the binaries when they are missing (``scripts/kube-build.sh``, cached outside the
repo), starts :class:`~harness.targets.KubeCluster` detached in ``.harness/cluster/`` (its PKI,
etcd data, logs, the ledger of its processes, ``kubeconfig`` and ``state.json``), creates the
KWOK nodes and labels the cluster as a test cluster (the ConfigMap the kube target's guard looks
for). ``down`` stops every process the ledger lists (pid and start time, so a recycled pid is
never signalled), also after ``up`` was killed half-way, and removes the directory. ``status``
says what runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from harness.drivers.process import alive, stop_ledger
from harness.targets import KubeCluster, kube_bin_dir
from harness.targets._kube import MARKER_NAMESPACE, TEST_CLUSTER_MARKER
from harness.util.errors import ConfigError, InfraError

BUILD_TIMEOUT_S = 3600  # a cold build is 15-30 minutes on 2 cores; warm it is a no-op
BUILD_SCRIPT = Path("scripts") / "kube-build.sh"
STATE_FILE = "state.json"
LEDGER_FILE = "ledger.json"
STATUS_TIMEOUT_S = 5.0
MAX_NODES = 1000
_PORT_FLAGS = re.compile(
    r"^--(secure-port|listen-client-urls|listen-peer-urls|server-address)=\S*?(\d+)$"
)


@dataclass(frozen=True)
class ClusterProcess:
    """One process of the cluster, as the ledger lists it."""

    name: str
    pid: int
    start_ticks: int | None
    ports: tuple[int, ...]
    log: str

    @property
    def running(self) -> bool:
        return alive(self.pid, self.start_ticks)


@dataclass(frozen=True)
class ClusterState:
    """What ``state.json`` records once ``up`` has finished."""

    api_url: str
    kubeconfig: str
    work_dir: str
    nodes: int
    processes: tuple[ClusterProcess, ...]


def cluster_dir(state_dir: Path) -> Path:
    """Where the cluster lives: ``<state_dir>/cluster`` (absolute: kubeconfig paths use it)."""
    return (state_dir / "cluster").resolve()


def cluster_up(
    *, state_dir: Path, repo_root: Path, nodes: int, out: TextIO = sys.stdout
) -> ClusterState:
    """Start a detached cluster with ``nodes`` KWOK nodes; return what ``state.json`` holds."""
    if not 1 <= nodes <= MAX_NODES:
        raise ConfigError(f"--nodes {nodes}: give a number of KWOK nodes from 1 to {MAX_NODES}.")
    work_dir = cluster_dir(state_dir)
    running = [p.name for p in ledger_processes(work_dir) if p.running]
    if running:
        raise ConfigError(
            f"A cluster is already up in {work_dir} ({', '.join(running)} running); "
            "use it (`harness cluster status`) or run `harness cluster down` first."
        )
    shutil.rmtree(work_dir, ignore_errors=True)  # what a stopped or killed cluster left
    bin_dir = find_or_build_binaries(repo_root, say=lambda line: print(line, file=out, flush=True))
    print(f"harness cluster: starting the control plane and {nodes} KWOK nodes", file=out)
    cluster = KubeCluster(
        bin_dir=bin_dir,
        work_dir=work_dir,
        nodes=nodes,
        ready_timeout_s=120 + nodes,
        detach=True,
    )
    with cluster:  # stops everything if anything below fails; otherwise leaves it running
        mark_test_cluster(cluster)
        state = ClusterState(
            api_url=cluster.api_url,
            kubeconfig=str(cluster.kubeconfig),
            work_dir=str(work_dir),
            nodes=nodes,
            processes=tuple(ledger_processes(work_dir)),
        )
        tmp = work_dir / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(asdict(state), indent=2))
        tmp.replace(work_dir / STATE_FILE)
    return state


def mark_test_cluster(cluster: KubeCluster) -> None:
    """Label the cluster as a throwaway: the ConfigMap the kube target's guard looks for."""
    body = k8s.V1ConfigMap(
        metadata=k8s.V1ObjectMeta(name=TEST_CLUSTER_MARKER, namespace=MARKER_NAMESPACE),
        data={"created-by": "harness cluster up", "work-dir": str(cluster.work_dir)},
    )
    with cluster.api_client() as api:
        try:
            k8s.CoreV1Api(api).create_namespaced_config_map(
                MARKER_NAMESPACE, body, _request_timeout=STATUS_TIMEOUT_S
            )
        except k8s.ApiException as exc:
            if exc.status != 409:  # already marked
                raise InfraError(
                    f"Could not create the ConfigMap {MARKER_NAMESPACE}/{TEST_CLUSTER_MARKER} "
                    f"at {cluster.api_url}: {exc.status} {exc.reason}."
                ) from exc


def cluster_down(*, state_dir: Path) -> list[str]:
    """Stop every process of the cluster (newest first) and remove its directory."""
    work_dir = cluster_dir(state_dir)
    stopped = stop_ledger(work_dir / LEDGER_FILE)
    shutil.rmtree(work_dir, ignore_errors=True)
    return stopped


def cluster_status(*, state_dir: Path) -> tuple[ClusterState | None, list[ClusterProcess]]:
    """The recorded state (None while ``up`` has not finished) and the ledger's processes."""
    work_dir = cluster_dir(state_dir)
    try:
        raw = json.loads((work_dir / STATE_FILE).read_text())
        state = ClusterState(
            **{**raw, "processes": tuple(ClusterProcess(**p) for p in raw["processes"])}
        )
    except (OSError, ValueError, TypeError, KeyError):
        state = None
    return state, ledger_processes(work_dir)


def ledger_processes(work_dir: Path) -> list[ClusterProcess]:
    """The processes the cluster's ledger lists (written as each one starts)."""
    try:
        entries = json.loads((work_dir / LEDGER_FILE).read_text())["processes"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [
        ClusterProcess(
            name=e["name"],
            pid=int(e["pid"]),
            start_ticks=e.get("start_ticks"),
            ports=_ports(e.get("argv", [])),
            log=str(e.get("log", "")),
        )
        for e in entries
    ]


def node_summary(kubeconfig: Path) -> str:
    """``N nodes, M Ready`` as the apiserver answers, or why it does not."""
    try:
        api = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
        with api:
            found = k8s.CoreV1Api(api).list_node(_request_timeout=STATUS_TIMEOUT_S).items
    except Exception as exc:  # any failure is the answer here: status must not crash
        return f"the apiserver does not answer ({type(exc).__name__})"
    ready = [n for n in found if _ready(n)]
    return f"{len(found)} nodes, {len(ready)} Ready"


def _ready(node: k8s.V1Node) -> bool:
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def find_or_build_binaries(repo_root: Path, *, say: Callable[[str], None]) -> Path:
    """The cached bin dir; runs ``scripts/kube-build.sh`` (its progress on stderr) if missing."""
    root = _repo_with_script(repo_root)
    found = kube_bin_dir(root)
    if found is not None:
        return found
    script = root / BUILD_SCRIPT
    say(
        f"harness cluster: building the Kubernetes binaries with {script} "
        "(15-30 minutes cold on 2 cores; cached afterwards)"
    )
    try:
        done = subprocess.run(
            ["bash", str(script)],
            stdout=subprocess.PIPE,
            stderr=None,  # the script's progress lines go straight to our stderr
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise InfraError(
            f"{script} did not finish within {BUILD_TIMEOUT_S} s; run it by hand and retry."
        ) from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise InfraError(
            f"{script} failed (exit {done.returncode}); its output is above. Fix it (Go on "
            "PATH, network for the module proxy) and run `harness cluster up` again."
        )
    say(f"harness cluster: binaries in {lines[-1]}")
    return Path(lines[-1])


def _repo_with_script(repo_root: Path) -> Path:
    """``repo_root`` if it holds the build script, else the checkout this package runs from."""
    for root in (repo_root, Path(__file__).resolve().parents[2]):
        if (root / BUILD_SCRIPT).is_file():
            return root
    raise ConfigError(
        f"No {BUILD_SCRIPT} in {repo_root} or next to the harness package; run `harness "
        "cluster up` from the repository's root."
    )


def _ports(argv: list[Any]) -> tuple[int, ...]:
    return tuple(int(m.group(2)) for a in argv if (m := _PORT_FLAGS.match(str(a))))


def describe_up(state: ClusterState) -> str:
    """What ``up`` prints once the cluster is ready."""
    lines = [
        f"harness cluster: up at {state.api_url} with {state.nodes} KWOK nodes",
        f"  kubeconfig: {state.kubeconfig}",
        f"  processes:  {', '.join(f'{p.name} ({p.pid})' for p in state.processes)}",
        f"  logs:       {Path(state.work_dir) / 'logs'}",
        "  stop with:  harness cluster down",
        f"export KUBECONFIG={state.kubeconfig}",
    ]
    return "\n".join(lines)


def describe_status(state: ClusterState | None, processes: list[ClusterProcess]) -> str:
    """What ``status`` prints: each process with pid, ports and whether it runs."""
    if not processes:
        return "harness cluster: no cluster is up (start one with `harness cluster up --kwok`)"
    rows = [
        f"  {p.name:<24} pid {p.pid:<8} "
        f"{'running' if p.running else 'exited':<8} "
        f"ports {','.join(map(str, p.ports)) or '-'}"
        for p in processes
    ]
    if state is None:
        head = ["harness cluster: start-up did not finish (killed or failed); its processes:"]
        tail = ["  clean up with: harness cluster down"]
    else:
        head = [
            f"harness cluster: {state.api_url}; {node_summary(Path(state.kubeconfig))}",
            f"  kubeconfig: {state.kubeconfig}",
        ]
        tail = [f"export KUBECONFIG={state.kubeconfig}"]
    return "\n".join(head + rows + tail)


def status_is_healthy(state: ClusterState | None, processes: list[ClusterProcess]) -> bool:
    """Up and every process running (or nothing at all: no cluster is a healthy answer)."""
    if not processes:
        return True
    return state is not None and all(p.running for p in processes)


__all__ = [
    "ClusterProcess",
    "ClusterState",
    "cluster_down",
    "cluster_status",
    "cluster_up",
    "describe_status",
    "describe_up",
    "status_is_healthy",
]
