"""The kind target: a kind cluster with the refplat image loaded and the kind overlay rolled out,
and `harness certify --target kind` through it; and `harness certify --target kube --overlay
kind` in an existing cluster, when one is given (GSH_CLUSTER_CONTEXT, GSH_CLUSTER_IMAGE). Where
kind cannot run (or no cluster is given), the deploy and certification tests skip with the
reason found at run time and the refusals are tested instead (the command exits 2 before
anything starts); what the targets share with the kube target is tested in the kube tier
(tests/e2e/test_kube_target.py: the kind overlay on its node ports; tests/e2e/
test_incluster_target.py: the in-cluster deploy through tunnels), the configuration in
tests/contracts/test_kind_certify.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from harness.cli import main
from harness.config import load_settings
from harness.drivers.prometheus import PrometheusClient
from harness.model import ExitCode
from harness.targets import KindOptions, KindTarget, kind_problem, kube_bin_dir
from harness.targets._kind import observability_binaries
from harness.targets._kindhost import FEDERATE_JOB, federate_job
from harness.util.errors import InfraError
from tests.conftest import REPO_ROOT, link_content
from tests.integration.conftest import IN_CLUSTER, federated_ups, scratch_prometheus

# What `harness certify` reads from its working directory (linked, not copied).
CONTENT = ("profiles", "slos", "experiments", "loadtests", "platform", "scripts", "fixtures")
HARNESS = str(Path(sys.executable).parent / "harness")  # the virtualenv's command
CERTIFY_TIMEOUT_S = 1800  # a cold runner: pull kindest/node, build the image, roll out


def workdir(tmp_path: Path) -> Path:
    """A working directory holding the repository's content as links: `harness` writes its
    state (.harness) and reports there."""
    work = tmp_path / "work"
    work.mkdir()
    return link_content(work, CONTENT)


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
    assert kind.kind.cluster_name not in clusters  # deleted at teardown


def test_certify_on_kind_where_kind_cannot_run_exits_2_with_the_reason_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    problem = kind_problem()
    if problem is None:
        pytest.skip("kind can run here; the refusal cannot be observed")
    work = workdir(tmp_path)
    monkeypatch.chdir(work)

    code = main(["certify", "--target", "kind", "--profile", "kind"])

    assert ExitCode.INFRA == code
    assert f"harness: --target kind cannot run here: {problem}." in capsys.readouterr().err
    assert sorted(CONTENT) == sorted(p.name for p in work.iterdir())  # no .harness, no reports


def test_certify_on_kind_refuses_the_flags_of_another_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = workdir(tmp_path)
    monkeypatch.chdir(work)

    code = main(["certify", "--target", "kind", "--profile", "kind", "--context", "prod"])

    assert ExitCode.USAGE == code
    assert "--context: only for --target kube; --target kind uses the kind cluster" in (
        capsys.readouterr().err
    )
    assert sorted(CONTENT) == sorted(p.name for p in work.iterdir())


@pytest.mark.timeout(CERTIFY_TIMEOUT_S + 120)
def test_certify_on_kind_passes_the_kind_profile_with_every_fault_injected(
    tmp_path: Path,
) -> None:
    problem = kind_problem()
    if problem is not None:
        pytest.skip(problem)
    work = workdir(tmp_path)
    run = subprocess.run(
        [HARNESS, "certify", "--target", "kind", "--profile", "kind"],
        cwd=work,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=CERTIFY_TIMEOUT_S,
    )
    assert 0 == run.returncode, run.stdout[-4000:] + run.stderr[-4000:]
    record = json.loads(next((work / "reports").glob("*/run.json")).read_text())
    profile = load_settings("kind", repo_root=REPO_ROOT, env={}, overrides=[])
    assert {path.stem: "PASS" for path in profile.experiments} == {
        f["name"]: f["status"] for f in record["faults"]
    }
    assert "kind" == record["target"]


# A real cluster to certify in, given by whoever runs the suite (this project's machines have
# none): a context marked as a test cluster, and a refplat image that cluster pulls.
CLUSTER_ENV = ("GSH_CLUSTER_CONTEXT", "GSH_CLUSTER_IMAGE")


@pytest.mark.timeout(CERTIFY_TIMEOUT_S + 120)
def test_certify_in_an_existing_cluster_passes_the_kind_profile_through_tunnels(
    tmp_path: Path,
) -> None:
    """`harness certify --target kube --overlay kind` in a real cluster: every fault of the kind
    profile injected and passed, the platform reached through kubectl port-forward tunnels."""
    missing = [name for name in CLUSTER_ENV if not os.environ.get(name)]
    if missing:
        pytest.skip(
            f"no real cluster given ({', '.join(missing)} unset): set GSH_CLUSTER_CONTEXT to a "
            "context marked as a test cluster (and KUBECONFIG if not ~/.kube/config) and "
            "GSH_CLUSTER_IMAGE to a refplat image it pulls; the kube tier tests the tunnels and "
            "the deploy against the local control plane (tests/e2e/test_incluster_target.py)"
        )
    work = workdir(tmp_path)
    run = subprocess.run(
        [HARNESS, "certify", "--target", "kube", "--overlay", "kind", "--profile", "kind",
         "--context", os.environ["GSH_CLUSTER_CONTEXT"],
         "--image", os.environ["GSH_CLUSTER_IMAGE"]],
        cwd=work,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=CERTIFY_TIMEOUT_S,
    )  # fmt: skip
    assert 0 == run.returncode, run.stdout[-4000:] + run.stderr[-4000:]
    run_dir = next((work / "reports").glob("*/run.json")).parent
    record = json.loads((run_dir / "run.json").read_text())
    profile = load_settings("kind", repo_root=REPO_ROOT, env={}, overrides=[])
    assert {path.stem: "PASS" for path in profile.experiments} == {
        f["name"]: f["status"] for f in record["faults"]
    }
    assert "kube" == record["target"]
    tunnels = json.loads((run_dir / "tunnels.json").read_text())
    assert {"prometheus", "refplat-api"} == {e["service"] for e in tunnels if e["what"] == "up"}


def test_the_host_side_of_a_kind_run_federates_the_in_cluster_prometheus_and_probes_the_api(
    tmp_path: Path,
) -> None:
    """The part of a kind run that needs no cluster: the host's Prometheus, blackbox exporter and
    Alertmanager started as the kind target starts them, federating a real Prometheus; the
    target waits until every federated job is up, keeping the in-cluster instance labels."""
    (tmp_path / "cluster").mkdir()
    kind = KindTarget(run_id="t-host", run_dir=tmp_path / "run", options=options(tmp_path))
    with scratch_prometheus(tmp_path / "cluster", IN_CLUSTER) as inside, kind:
        federate = inside.url.removeprefix("http://")
        url = kind._observe(
            observability_binaries(),
            api_url=inside.url,  # the probe of /healthz fails there: only its scrapes count
            scrape=[federate_job(federate)],
        )
        with PrometheusClient(url, timeout_s=5) as prom:
            prom.wait_targets_up([FEDERATE_JOB, "probe-api"], timeout_s=30)
            federated = federated_ups(prom)
        roles = sorted(p.role for p in kind.supervisor.processes.values())
    assert {
        ("refplat-agent", "refplat-node-0", 1.0),
        ("refplat-api", "refplat-api-0", 1.0),
        ("refplat-api", "refplat-api-1", 1.0),
        ("refplat-controller", "refplat-controller-0", 1.0),
    } == {(labels["job"], labels["instance"], value) for labels, value in federated}
    assert ["alert-sink", "alertmanager", "blackbox", "prometheus"] == roles
    assert [] == [p.name for p in kind.supervisor.processes.values() if p.running()]
