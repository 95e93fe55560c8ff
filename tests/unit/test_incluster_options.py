"""``--target kube --overlay kind``: the flags are refused where they do not belong, before
anything starts; the engine picks the in-cluster target; ``--image`` replaces the overlay's image
in every container and in the runtime's ``--image=`` argument, and is refused where there is
nothing to replace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.config import load_settings
from harness.engine.certify import CertifyRequest, make_target
from harness.model import ExitCode
from harness.targets import InClusterOptions, InClusterTarget, KwokTarget, LocalTopology
from harness.targets._kube import KubeOptions, with_image
from harness.util.errors import ConfigError
from tests.conftest import CONTENT, REPO_ROOT, link_content


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of links to the repository's content, `harness` run from it."""
    monkeypatch.chdir(link_content(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["certify", "--target", "kube", "--overlay", "kind"],
            "--target kube --overlay kind deploys the platform into an existing cluster; name "
            "it with --context NAME",
        ),
        (
            ["certify", "--target", "local", "--overlay", "kind"],
            "--overlay kind: only for --target kube",
        ),
        (
            ["certify", "--target", "kube", "--context", "x", "--image", "r/refplat:1"],
            "--image r/refplat:1: only for --target kube --overlay kind",
        ),
        (
            ["certify", "--target", "kind", "--image", "r/refplat:1"],
            "--image r/refplat:1: only for --target kube --overlay kind",
        ),
        (
            ["up", "--target", "kube", "--overlay", "kind", "--context", "x"],
            "harness up --target kube --overlay kind: not offered",
        ),
        (
            ["certify", "--target", "kube", "--overlay", "kind", "--kubeconfig", "missing"],
            "--kubeconfig missing: no such file.",
        ),
    ],
)
def test_misplaced_in_cluster_flags_exit_3_with_the_reason_and_start_nothing(
    work: Path, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    assert ExitCode.USAGE == main(argv)
    err = capsys.readouterr().err
    assert said in err
    assert "Nothing was started." in err
    assert sorted(CONTENT) == sorted(p.name for p in work.iterdir())  # no .harness, no reports


def request(tmp_path: Path, **kwargs: Any) -> CertifyRequest:
    return CertifyRequest(
        settings=load_settings("kind", repo_root=REPO_ROOT, env={}, overrides=[]),
        target="kube",
        repo_root=REPO_ROOT,
        run_dir=tmp_path / "run",
        run_id="t-1",
        state_dir=tmp_path / "state",
        **kwargs,
    )


def test_the_engine_puts_the_platform_in_the_cluster_for_the_kind_overlay(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    inside = InClusterOptions(
        repo_root=REPO_ROOT, kubectl=Path("kubectl"), kubeconfig=config, context="staging"
    )
    beside = KubeOptions(manifests_dir=REPO_ROOT / "platform" / "manifests", kubectl=Path("k"))
    topology = LocalTopology()

    target = make_target(request(tmp_path, incluster=inside), topology)
    other = make_target(request(tmp_path, kube=beside), topology)

    assert isinstance(target, InClusterTarget)
    assert isinstance(other, KwokTarget)
    assert ("kube", "gsh-t-1", str(config), "staging") == (
        target.name,
        target.run_namespace.namespace,
        target.run_namespace.kubeconfig,
        target.run_namespace.context,
    )
    assert {"probe-api", "refplat-federate", "kube-apiserver", "kubelet"} == set(
        target.prometheus_jobs
    )
    assert "not as processes of this host" in target.capability_gaps["kill-process"]


def workload(kind: str, *containers: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": kind.lower()},
        "spec": {"template": {"spec": {"containers": list(containers)}}},
    }


def test_the_image_replaces_the_overlays_in_containers_and_in_the_runtimes_argument() -> None:
    objects = [
        workload("Deployment", {"name": "api", "image": "refplat:dev"}),
        workload(
            "StatefulSet",
            {
                "name": "runtime",
                "image": "refplat:dev",
                "args": ["kube-agent", "--image=refplat:dev"],
            },
            {"name": "redis", "image": "redis:7.2-alpine"},
        ),
        {"kind": "Service", "metadata": {"name": "api"}, "spec": {"ports": []}},
    ]

    out = with_image(objects, "registry.test/refplat:1")

    deployment, statefulset, service = out
    runtime, redis = statefulset["spec"]["template"]["spec"]["containers"]
    assert (
        "registry.test/refplat:1"
        == deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    assert ("registry.test/refplat:1", ["kube-agent", "--image=registry.test/refplat:1"]) == (
        runtime["image"],
        runtime["args"],
    )
    assert "redis:7.2-alpine" == redis["image"]  # not the platform's: left alone
    assert objects[2] == service
    assert "refplat:dev" == objects[0]["spec"]["template"]["spec"]["containers"][0]["image"]


def test_an_image_with_nothing_to_replace_is_refused() -> None:
    objects = [workload("Deployment", {"name": "redis", "image": "redis:7.2-alpine"})]

    with pytest.raises(ConfigError, match="no container of the overlay runs refplat:dev"):
        with_image(objects, "registry.test/refplat:1")
