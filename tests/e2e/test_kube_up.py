"""`harness up --target kube`, the plain upstream `chaos run`, then `harness down`.

As a user runs them: the `harness` command in a directory of its own (its `.harness/` state,
the repository's content linked in), against the session's control plane with KWOK nodes. `up`
leaves the platform running with its game servers as Pods in the run's namespace; `down` stops
every process of the run, puts back a Node a fault deleted and deletes the namespace, also when
it was deleted by hand already.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from harness.chaos.kube.actions import delete_node
from harness.cli import main
from harness.drivers.process import CHAOS_LEDGER, SUPERVISOR_LEDGER, Ledger, alive, stop_ledger
from harness.engine.lifecycle import bring_down, register_run
from harness.model import Endpoints, ExitCode
from harness.targets import RESTART_LEDGER, KubeCluster
from harness.targets._kwok import RunNamespace
from harness.util.net import free_port
from tests.conftest import link_content

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

BIN = Path(sys.executable).parent
CONTENT = ("profiles", "slos", "experiments", "loadtests", "platform", "scripts", "fixtures")
COMMAND_TIMEOUT_S = 180.0
GONE_WAIT_S = 60.0
EXPERIMENT = "experiments/k8s-gameserver-pod-terminate.yaml"
LEDGERS = (SUPERVISOR_LEDGER, CHAOS_LEDGER, RESTART_LEDGER)


def harness(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "harness"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def context_of(kube_cluster: KubeCluster) -> str:
    _, current = k8s_config.list_kube_config_contexts(config_file=str(kube_cluster.kubeconfig))
    return str(current["name"])


def run_dirs(workdir: Path) -> list[Path]:
    reports = workdir / "reports"
    return sorted(p for p in reports.iterdir() if p.is_dir()) if reports.is_dir() else []


def living(run_dir: Path) -> list[str]:
    """The processes of the run's ledgers that still run."""
    return [
        e["name"]
        for name in LEDGERS
        for e in Ledger(run_dir / name).entries()
        if alive(int(e["pid"]), e.get("start_ticks"))
    ]


def nodes(kube_cluster: KubeCluster) -> dict[str, bool]:
    """Node name -> schedulable."""
    with kube_cluster.api_client() as api:
        found: Any = k8s.CoreV1Api(api).list_node(_request_timeout=10)
    return {n.metadata.name: not n.spec.unschedulable for n in found.items}


def namespace_exists(kube_cluster: KubeCluster, namespace: str) -> bool:
    with kube_cluster.api_client() as api:
        try:
            k8s.CoreV1Api(api).read_namespace(namespace, _request_timeout=10)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return False
            raise
    return True


def await_gone(kube_cluster: KubeCluster, namespace: str) -> None:
    deadline = time.monotonic() + GONE_WAIT_S
    while namespace_exists(kube_cluster, namespace):
        assert time.monotonic() < deadline, f"namespace {namespace} still there after 60 s"
        time.sleep(0.5)


@pytest.fixture
def workdir(kube_cluster: KubeCluster, tmp_path: Path) -> Iterator[Path]:
    """A checkout of our content without state; whatever a test left running is stopped."""
    yield link_content(tmp_path, CONTENT)
    if any((tmp_path / ".harness" / "runs").glob("*.json")):
        harness(tmp_path, "down")
    for run_dir in run_dirs(tmp_path):
        for name in LEDGERS:
            stop_ledger(run_dir / name)


def bring_up(workdir: Path, *flags: str) -> tuple[Path, dict[str, Any]]:
    """`harness up --target kube` with ``flags``; the run's directory and registry entry."""
    up = harness(workdir, "up", "--target", "kube", "--profile", "kube-kwok", *flags)
    assert 0 == up.returncode, up.stdout + up.stderr[-4000:]
    assert f"chaos run {EXPERIMENT}" in up.stdout
    (run_dir,) = run_dirs(workdir)
    (entry_file,) = (workdir / ".harness" / "runs").glob("*.json")
    return run_dir, json.loads(entry_file.read_text())


def test_up_on_kube_serves_a_plain_chaos_run_and_down_deletes_the_namespace_and_stops_all(
    kube_cluster: KubeCluster, workdir: Path
) -> None:
    # The kubeconfig of `harness cluster up` is the default, as for certify.
    (workdir / ".harness" / "cluster").mkdir(parents=True)
    (workdir / ".harness" / "cluster" / "kubeconfig").symlink_to(kube_cluster.kubeconfig)
    context = context_of(kube_cluster)
    run_dir, entry = bring_up(workdir, "--allow-context", context)

    namespace = f"gsh-{run_dir.name}"
    assert (True, "kube") == (entry["detached"], entry["target"])
    expected = {
        "namespace": namespace,
        "kubeconfig": str(kube_cluster.kubeconfig.resolve()),
        "context": context,
    }
    assert expected == entry["kube"]
    endpoints = Endpoints.read(workdir / ".harness" / "target.json")
    assert (run_dir.name, namespace) == (endpoints.run_id, endpoints.extra["kube_namespace"])
    assert namespace_exists(kube_cluster, namespace)
    assert living(run_dir), "harness up left no process running"

    chaos = subprocess.run(
        [str(BIN / "chaos"), "run", "--journal-path", "journal.json", EXPERIMENT],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert 0 == chaos.returncode, chaos.stdout + chaos.stderr[-4000:]
    journal = json.loads((workdir / "journal.json").read_text())
    assert ("completed", False) == (journal["status"], journal["deviated"])
    # A node fault whose rollback never ran (a `chaos run` cut short): `down` puts it back.
    before = nodes(kube_cluster)
    taken = sorted(before)[-1]
    delete_node(target_file=str(workdir / ".harness" / "target.json"), node=taken)
    assert taken not in nodes(kube_cluster)

    down = harness(workdir, "down")
    assert 0 == down.returncode, down.stdout + down.stderr[-4000:]
    assert f"namespace {namespace} deleted" in down.stderr
    await_gone(kube_cluster, namespace)  # down waits; bounded again here all the same
    assert [] == living(run_dir)
    assert before == nodes(kube_cluster)
    assert [] == list((workdir / ".harness" / "runs").glob("*.json"))
    assert not (workdir / ".harness" / "target.json").exists()


def test_down_succeeds_and_warns_when_the_namespace_was_deleted_by_hand(
    kube_cluster: KubeCluster, workdir: Path
) -> None:
    kubeconfig = str(kube_cluster.kubeconfig)
    flags = ("--kubeconfig", kubeconfig, "--allow-context", context_of(kube_cluster))
    small = ("--set", "topology.game_servers=3", "--set", "topology.node_agents=1")
    run_dir, entry = bring_up(workdir, *flags, *small)
    namespace = entry["kube"]["namespace"]
    with kube_cluster.api_client() as api:
        k8s.CoreV1Api(api).delete_namespace(namespace, _request_timeout=10)

    down = harness(workdir, "down")  # the namespace is terminating, or gone already
    assert 0 == down.returncode, down.stdout + down.stderr[-4000:]
    assert f"namespace {namespace} was already" in down.stderr
    await_gone(kube_cluster, namespace)
    assert [] == living(run_dir)
    assert [] == list((workdir / ".harness" / "runs").glob("*.json"))


def test_up_on_a_target_it_cannot_bring_up_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert ExitCode.USAGE == main(["up", "--target", "kind", "--profile", "kube-kwok"])
    assert "invalid choice: 'kind' (choose from 'local', 'kube')" in capsys.readouterr().err
    assert [] == list(tmp_path.iterdir())  # nothing started, not even the state dir


def test_down_of_a_kube_run_whose_cluster_no_longer_answers_warns_and_succeeds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "gone", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}
                ],
                "users": [{"name": "admin", "user": {"token": "unused"}}],
                "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "admin"}}],
                "current-context": "gone",
            }
        )
    )
    state_dir, run_dir = tmp_path / ".harness", tmp_path / "reports" / "r1"
    run_dir.mkdir(parents=True)
    where = RunNamespace(namespace="gsh-r1", kubeconfig=str(kubeconfig), context="gone")
    register_run(state_dir, "r1", run_dir, detached=True, kube=where)

    with caplog.at_level(logging.WARNING):
        assert [] == bring_down(state_dir)
    delete = f"kubectl --kubeconfig {kubeconfig} --context gone delete namespace gsh-r1"
    assert any(delete in r.getMessage() for r in caplog.records), caplog.text
    assert [] == list((state_dir / "runs").glob("*.json"))
