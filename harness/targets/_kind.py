"""The ``kind`` target: a kind cluster, the refplat image built and loaded into it, and the
``kind`` overlay applied through the kube target (one namespace per run, server-side apply,
rollouts awaited).

Pipeline: check the tools (a container engine answering, ``kind`` on PATH) -> the cluster (reuse
the kind cluster of that name when it exists and keep it; else create it from
``fixtures/kind/cluster.yaml`` and delete it at teardown) -> mark it as a test cluster (the
ConfigMap the kube target looks for; a kind cluster is a throwaway by nature) -> build
``platform/Containerfile`` as ``refplat:dev`` -> ``kind load docker-image`` -> the kube target
with the ``kind`` overlay and the CRDs of ``platform/manifests/crds``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.model import Endpoints
from harness.targets._containers import container_engine_problem
from harness.targets._kube import (
    CAPABILITIES,
    MARKER_NAMESPACE,
    TEST_CLUSTER_MARKER,
    KubeOptions,
    KubeTarget,
)
from harness.util.errors import InfraError

log = logging.getLogger(__name__)

IMAGE = "refplat:dev"  # what overlays/kind/kustomization.yaml expects
CREATE_TIMEOUT_S = 600  # pulling kindest/node on a cold runner takes minutes
BUILD_TIMEOUT_S = 900
LOAD_TIMEOUT_S = 300
KIND_INSTALL = "go install sigs.k8s.io/kind@v0.29.0"


def kind_problem() -> str | None:
    """None when the kind target can run here; else why not (a sentence for a skip or error)."""
    engine = container_engine_problem()
    if engine is not None:
        return engine
    if shutil.which("kind") is None:
        return f"kind not found on PATH; install it with `{KIND_INSTALL}`"
    return None


@dataclass(frozen=True)
class KindOptions:
    """Which kind cluster, built from what."""

    repo_root: Path
    kubectl: Path
    cluster_name: str = "gsharness"
    cluster_config: Path | None = None  # None: <repo_root>/fixtures/kind/cluster.yaml
    engine: str = "docker"  # the CLI that builds the image (podman works through its alias)
    rollout_timeout_s: float = 300.0


class KindTarget:
    """A kind cluster with refplat deployed into a namespace of the run; tears down on exit."""

    name = "kind"
    capabilities = frozenset(CAPABILITIES)

    def __init__(
        self,
        *,
        run_id: str,
        run_dir: Path,
        options: KindOptions,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        self.options = options
        self.progress = progress or log.info
        self.kubeconfig = run_dir / "kubeconfig"
        self.context = f"kind-{options.cluster_name}"
        self.created_cluster = False
        self.kube: KubeTarget | None = None

    def __enter__(self) -> KindTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    @property
    def endpoints(self) -> Endpoints:
        if self.kube is None:
            raise InfraError("The kind target has not been deployed yet.")
        return self.kube.endpoints

    def deploy(self) -> Endpoints:
        problem = kind_problem()
        if problem is not None:
            raise InfraError(f"The kind target cannot run here: {problem}.")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._ensure_cluster()
        self._mark_test_cluster()
        self._build_and_load_image()
        opts = self.options
        self.kube = KubeTarget(
            run_id=self.run_id,
            run_dir=self.run_dir,
            options=KubeOptions(
                manifests_dir=opts.repo_root / "platform" / "manifests",
                kubectl=opts.kubectl,
                overlay="kind",
                kubeconfig=self.kubeconfig,
                context=self.context,
                install_crds=True,
                rollout_timeout_s=opts.rollout_timeout_s,
            ),
            progress=self.progress,
        )
        return self.kube.deploy()

    def teardown(self) -> None:
        """The run's namespace first, then the cluster when this run created it."""
        try:
            if self.kube is not None:
                self.kube.teardown()
        finally:
            if self.created_cluster:
                self.created_cluster = False
                self._run(
                    ["kind", "delete", "cluster", "--name", self.options.cluster_name],
                    timeout_s=CREATE_TIMEOUT_S,
                    what="deleting the kind cluster",
                )

    def _ensure_cluster(self) -> None:
        name = self.options.cluster_name
        existing = self._run(["kind", "get", "clusters"], timeout_s=60, what="listing clusters")
        if name in existing.split():
            self.progress(f"reusing kind cluster {name} (kept after the run)")
            self.kubeconfig.write_text(
                self._run(["kind", "get", "kubeconfig", "--name", name], timeout_s=60, what="")
            )
            self.kubeconfig.chmod(0o600)
            return
        config = self.options.cluster_config or (
            self.options.repo_root / "fixtures" / "kind" / "cluster.yaml"
        )
        self.progress(f"creating kind cluster {name} from {config}")
        self.created_cluster = True  # a half-created cluster is deleted too
        self._run(
            [
                "kind",
                "create",
                "cluster",
                "--name",
                name,
                "--config",
                str(config),
                "--kubeconfig",
                str(self.kubeconfig),
                "--wait",
                "180s",
            ],
            timeout_s=CREATE_TIMEOUT_S,
            what="creating the kind cluster",
        )

    def _mark_test_cluster(self) -> None:
        marker = (
            "apiVersion: v1\nkind: ConfigMap\n"
            f"metadata: {{name: {TEST_CLUSTER_MARKER}, namespace: {MARKER_NAMESPACE}}}\n"
        )
        self._run(
            [
                str(self.options.kubectl),
                f"--kubeconfig={self.kubeconfig}",
                f"--context={self.context}",
                "apply",
                "--server-side",
                "--field-manager=gsharness",
                "-f",
                "-",
            ],
            timeout_s=60,
            what="marking the cluster as a test cluster",
            stdin=marker,
        )

    def _build_and_load_image(self) -> None:
        root, engine = self.options.repo_root, self.options.engine
        self.progress(f"building {IMAGE} from platform/Containerfile with {engine}")
        self._run(
            [
                engine,
                "build",
                "-f",
                str(root / "platform" / "Containerfile"),
                "-t",
                IMAGE,
                str(root),
            ],
            timeout_s=BUILD_TIMEOUT_S,
            what=f"building {IMAGE}",
        )
        self._run(
            ["kind", "load", "docker-image", IMAGE, "--name", self.options.cluster_name],
            timeout_s=LOAD_TIMEOUT_S,
            what=f"loading {IMAGE} into the kind cluster",
        )

    def _run(self, argv: list[str], *, timeout_s: float, what: str, stdin: str = "") -> str:
        try:
            out = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout_s, input=stdin or None
            )
        except subprocess.TimeoutExpired as exc:
            raise InfraError(
                f"{what or argv[0]}: `{' '.join(argv)}` took over {timeout_s:g} s."
            ) from exc
        if out.returncode != 0:
            tail = "\n".join(out.stderr.strip().splitlines()[-10:])
            raise InfraError(
                f"{what or argv[0]}: `{' '.join(argv)}` failed (exit {out.returncode}):\n{tail}"
            )
        return out.stdout
