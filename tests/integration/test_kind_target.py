"""The kind target: a kind cluster with the refplat image loaded and the kind overlay rolled out.
Where kind cannot run, the deploy test skips with the reason found at run time and the target's
refusal is tested instead; what it shares with the kube target is tested in the kube tier
(tests/e2e/test_kube_target.py)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from harness.targets import KindOptions, KindTarget, kind_problem, kube_bin_dir
from harness.util.errors import InfraError
from tests.conftest import REPO_ROOT


def options(tmp_path: Path) -> KindOptions:
    bin_dir = kube_bin_dir(REPO_ROOT)
    kubectl = bin_dir / "kubectl" if bin_dir is not None else Path("kubectl")
    # A cluster of its own, so the test never deletes a cluster someone else made.
    return KindOptions(
        repo_root=REPO_ROOT, kubectl=kubectl, cluster_name=f"gsh-t-{uuid.uuid4().hex[:6]}"
    )


def test_where_kind_cannot_run_deploy_refuses_with_the_reason_and_starts_nothing(
    tmp_path: Path,
) -> None:
    problem = kind_problem()
    if problem is None:
        pytest.skip("kind can run here; the refusal cannot be observed")
    kind = KindTarget(run_id="t-refused", run_dir=tmp_path, options=options(tmp_path))
    with kind, pytest.raises(InfraError) as refused:
        kind.deploy()
    assert f"The kind target cannot run here: {problem}." == str(refused.value)
    assert (False, None) == (kind.created_cluster, kind.kube)
    assert not kind.kubeconfig.exists()


@pytest.mark.timeout(1200)
def test_the_kind_target_rolls_out_the_kind_overlay_and_deletes_its_cluster(
    tmp_path: Path,
) -> None:
    problem = kind_problem()
    if problem is not None:
        pytest.skip(problem)
    run_id = f"t-{uuid.uuid4().hex[:8]}"
    kind = KindTarget(run_id=run_id, run_dir=tmp_path, options=options(tmp_path))
    with kind:
        endpoints = kind.deploy()
        api = k8s_config.new_client_from_config(
            config_file=str(kind.kubeconfig), context=kind.context
        )
        with api:
            pods = k8s.CoreV1Api(api).list_namespaced_pod(
                endpoints.extra["kube_namespace"], _request_timeout=10
            )
        images = {c.image for p in pods.items for c in p.spec.containers}
    assert "refplat:dev" in images
    assert all(p.status.phase == "Running" for p in pods.items)
    clusters = subprocess.run(
        ["kind", "get", "clusters"], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    assert kind.options.cluster_name not in clusters  # deleted at teardown
