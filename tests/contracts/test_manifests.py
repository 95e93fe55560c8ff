"""The Kubernetes manifests (platform/manifests): every overlay renders with the pinned kubectl,
every pod passes Pod Security `restricted` and has requests and limits, no Secret is committed,
the Prometheus rules pass promtool and the PrometheusRule carries the same groups."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.targets import kube_bin_dir
from tests.conftest import REPO_ROOT

MANIFESTS = REPO_ROOT / "platform" / "manifests"
RULES_FILE = MANIFESTS / "base" / "rules" / "refplat.rules.yaml"
PROMETHEUS_RULE = MANIFESTS / "base" / "monitoring" / "prometheusrule.yaml"
CONTAINERFILE = REPO_ROOT / "platform" / "Containerfile"
OVERLAYS = ("kind", "kwok", "production-eu", "production-us")
# What the deployer writes before rendering the kind overlay (its secretGenerator reads them).
DEPLOY_TIME_SECRETS = {"admin-token": "test-admin-token\n", "audit-keys": "k1:dGVzdA==\n"}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
BUILD_TIMEOUT_S = 3600  # a cold build of the control plane; warm it is a no-op

# The first render may build the binaries (15-30 minutes cold).
pytestmark = pytest.mark.timeout(4000)


def find_kubectl() -> Path:
    """The pinned kubectl of scripts/kube-build.sh, built first when missing."""
    found = kube_bin_dir(REPO_ROOT)
    if found is None:
        script = REPO_ROOT / "scripts" / "kube-build.sh"
        out = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
        )
        if out.returncode != 0:
            tail = "\n".join((out.stdout + out.stderr).splitlines()[-30:])
            pytest.fail(f"{script} failed (exit {out.returncode}); the end of its output:\n{tail}")
        found = Path(out.stdout.strip().splitlines()[-1])
    return found / "kubectl"


def stage_manifests(dest: Path) -> Path:
    """A copy of platform/manifests with the deploy-time secret files written (as a deployer)."""
    shutil.copytree(MANIFESTS, dest)
    secrets = dest / "overlays" / "kind" / "secrets"
    for name, value in DEPLOY_TIME_SECRETS.items():
        (secrets / name).write_text(value)
    return dest


def render(kubectl: Path, root: Path, overlay: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(kubectl), "kustomize", str(root / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 == out.returncode, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    kubectl = find_kubectl()
    root = stage_manifests(tmp_path_factory.mktemp("manifests") / "manifests")
    return {overlay: render(kubectl, root, overlay) for overlay in OVERLAYS}


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] in POD_TEMPLATE_KINDS:
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":
            yield f"Pod/{obj['metadata']['name']}", obj["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def restricted_problems(spec: dict[str, Any]) -> list[str]:
    """What Pod Security `restricted` (and our readOnlyRootFilesystem rule) would object to."""
    problems = []
    pod_sc = spec.get("securityContext", {})
    if any(spec.get(f) for f in ("hostNetwork", "hostPID", "hostIPC")):
        problems.append("uses a host namespace")
    if any("hostPath" in v for v in spec.get("volumes", [])):
        problems.append("mounts a hostPath")
    for c in containers(spec):
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            problems.append(f"{name}: runAsNonRoot is not true")
        if 0 in (sc.get("runAsUser"), pod_sc.get("runAsUser")):
            problems.append(f"{name}: runs as uid 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: no RuntimeDefault seccomp profile")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: root filesystem is writable")
        if any("hostPort" in p for p in c.get("ports", [])):
            problems.append(f"{name}: uses a hostPort")
    return problems


def resource_problems(spec: dict[str, Any]) -> list[str]:
    problems = []
    for c in containers(spec):
        resources = c.get("resources", {})
        for kind in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(kind, {}))
            if missing:
                problems.append(f"{c['name']}: no {kind} for {', '.join(sorted(missing))}")
    return problems


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_into_the_refplat_namespace(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objects = rendered[overlay]
    namespaced = [o for o in objects if o["kind"] != "Namespace"]
    assert ["refplat"] == list(by_kind(objects, "Namespace"))
    assert {"refplat"} == {o["metadata"].get("namespace") for o in namespaced}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_passes_pod_security_restricted(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    problems = {name: restricted_problems(spec) for name, spec in pod_specs(rendered[overlay])}
    assert {} == {name: p for name, p in problems.items() if p}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_cpu_and_memory_requests_and_limits(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    problems = {name: resource_problems(spec) for name, spec in pod_specs(rendered[overlay])}
    assert {} == {name: p for name, p in problems.items() if p}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_namespace_enforces_audits_and_warns_restricted(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    labels = by_kind(rendered[overlay], "Namespace")["refplat"]["metadata"]["labels"]
    modes = {m: labels.get(f"pod-security.kubernetes.io/{m}") for m in ("enforce", "audit", "warn")}
    assert {"enforce": "restricted", "audit": "restricted", "warn": "restricted"} == modes


def test_the_kwok_overlay_holds_only_what_the_kube_runtime_needs(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    kinds = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in rendered["kwok"])
    expected = [
        "Namespace/refplat",
        "Role/refplat-controller",
        "RoleBinding/refplat-controller",
        "ServiceAccount/refplat-controller",
    ]
    assert expected == kinds


def test_the_controller_may_only_manage_pods_its_config_map_and_leases(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    roles = by_kind(rendered["kind"], "Role")
    rules = sorted(
        (r["apiGroups"][0], r["resources"][0], sorted(r["verbs"]))
        for r in roles["refplat-controller"]["rules"]
    )
    assert [
        ("", "configmaps", ["create", "get"]),
        ("", "pods", ["create", "delete", "list", "watch"]),
        ("coordination.k8s.io", "leases", ["create", "get", "update"]),
    ] == rules
    bound = {
        s["name"]
        for b in by_kind(rendered["kind"], "RoleBinding").values()
        for s in b["subjects"]
        if b["roleRef"]["name"] != "prometheus"
    }
    assert {"refplat-controller"} == bound  # the api has no Kubernetes permissions


def test_the_api_is_probed_spread_protected_and_autoscaled(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["kind"]
    api = by_kind(objects, "Deployment")["refplat-api"]["spec"]
    (container,) = api["template"]["spec"]["containers"]
    hpa = by_kind(objects, "HorizontalPodAutoscaler")["refplat-api"]["spec"]
    assert 3 == api["replicas"]
    assert "/readyz" == container["readinessProbe"]["httpGet"]["path"]
    assert "/healthz" == container["livenessProbe"]["httpGet"]["path"]
    spread = api["template"]["spec"]["topologySpreadConstraints"]
    assert ["kubernetes.io/hostname"] == [c["topologyKey"] for c in spread]
    assert 2 == by_kind(objects, "PodDisruptionBudget")["refplat-api"]["spec"]["minAvailable"]
    assert ["cpu"] == [m["resource"]["name"] for m in hpa["metrics"]]
    assert 2 == by_kind(objects, "Deployment")["refplat-controller"]["spec"]["replicas"]


def test_network_policies_deny_by_default_and_allow_dns(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    policies = by_kind(rendered["kind"], "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert ({}, ["Ingress", "Egress"]) == (deny["podSelector"], deny["policyTypes"])
    assert "ingress" not in deny
    assert "egress" not in deny
    dns_ports = {p["port"] for p in policies["allow-dns-egress"]["spec"]["egress"][0]["ports"]}
    assert {53} == dns_ports
    assert {"api", "controller", "redis", "sentinel", "prometheus"} <= set(policies)


@pytest.mark.parametrize("overlay", ["production-eu", "production-us"])
def test_production_regions_scale_out_with_hard_anti_affinity(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objects = rendered[overlay]
    workloads = {**by_kind(objects, "Deployment"), **by_kind(objects, "StatefulSet")}
    anti = {
        name: w["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ][0]["topologyKey"]
        for name, w in workloads.items()
    }
    assert dict.fromkeys(workloads, "kubernetes.io/hostname") == anti
    assert 6 == workloads["refplat-api"]["spec"]["replicas"]
    routes = by_kind(objects, "ConfigMap")
    (alertmanager,) = [c for n, c in routes.items() if n.startswith("refplat-alertmanager")]
    config = yaml.safe_load(alertmanager["data"]["alertmanager.yml"])
    assert {'severity="page"', 'severity="ticket"'} == {
        r["matchers"][0] for r in config["route"]["routes"]
    }


def test_no_secret_with_values_is_committed() -> None:
    committed = []
    for path in sorted(MANIFESTS.rglob("*.y*ml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue
            if doc.get("kind") == "Secret":
                committed.append(str(path.relative_to(MANIFESTS)))
            for generator in doc.get("secretGenerator", []):
                if generator.get("literals") or generator.get("envs"):
                    committed.append(f"{path.relative_to(MANIFESTS)}: {generator['name']}")
    leftovers = [p.name for p in (MANIFESTS / "overlays" / "kind" / "secrets").iterdir()]
    assert [] == committed
    assert [".gitignore"] == leftovers


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_secrets_hold_only_the_deploy_time_files(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    values = sorted(
        base64.b64decode(v).decode()
        for s in by_kind(rendered[overlay], "Secret").values()
        for v in s.get("data", {}).values()
    )
    assert (sorted(DEPLOY_TIME_SECRETS.values()) if overlay == "kind" else []) == values


def test_promtool_accepts_the_rules_file() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed; apt-get install prometheus (scripts/setup.sh).")
    out = subprocess.run(
        [promtool, "check", "rules", str(RULES_FILE)], capture_output=True, text=True, timeout=60
    )
    assert 0 == out.returncode, out.stdout + out.stderr


def test_the_prometheus_rule_carries_the_rules_file() -> None:
    rule = yaml.safe_load(PROMETHEUS_RULE.read_text())
    assert ("monitoring.coreos.com/v1", "PrometheusRule") == (rule["apiVersion"], rule["kind"])
    assert yaml.safe_load(RULES_FILE.read_text())["groups"] == rule["spec"]["groups"]


def test_the_rules_record_the_slis_and_alert_on_them() -> None:
    rules = [r for g in yaml.safe_load(RULES_FILE.read_text())["groups"] for r in g["rules"]]
    records = {r["record"] for r in rules if "record" in r}
    assert {
        "refplat:api_availability:ratio_rate5m",
        "refplat:probe_success:avg_rate5m",
        "refplat:api_request_duration_seconds:p99_rate5m",
        "refplat:controller_failovers:changes1h",
    } <= records
    assert all(r["labels"]["severity"] in {"page", "ticket"} for r in rules if "alert" in r)


def test_the_containerfile_builds_from_slim_python_and_runs_as_non_root() -> None:
    lines = [
        line.strip()
        for line in CONTAINERFILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    instructions = [line.split()[0].upper() for line in lines]
    bases = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert 2 <= len(bases)
    assert {"python:3.11-slim"} == set(bases)
    assert users
    assert users[-1].split(":")[0] not in {"0", "root"}
    assert not [line for line in lines if line.upper().startswith("ADD ") and "://" in line]
    assert 'ENTRYPOINT ["refplat"]' in lines
    assert any("--require-hashes" in line and "requirements.lock" in line for line in lines)
    assert "FROM" == instructions[0]
