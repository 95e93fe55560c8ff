"""The experiments on the platform's in-cluster workloads: the network-policy intruder's Pod, and
which targets offer what they require (on kube-kwok they are SKIPPED, as the engine decides)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.chaos.kube.netpolicy import intruder_pod
from harness.config import load_settings
from harness.drivers.chaos import required_capabilities, validate_experiment
from harness.targets import KindTarget, KubeOptions, KwokTarget, LocalTopology
from tests.conftest import REPO_ROOT

EXPERIMENTS = REPO_ROOT / "experiments"
POLICIES = REPO_ROOT / "platform" / "manifests" / "base" / "networkpolicies.yaml"
IN_CLUSTER = {
    "k8s-controller-leader-pod-delete": {"controller-pod-delete"},
    "k8s-api-scale": {"scale"},
    "k8s-network-policy-deny": {"network-policy"},
}
ON_KWOK = ("k8s-gameserver-pod-terminate", "k8s-node-drain", "k8s-node-delete")


def pod(connect_timeout_s: float = 5.0) -> dict[str, Any]:
    return intruder_pod(
        name="gsharness-intruder-abc123",
        namespace="gsh-t",
        run_id="t",
        image="refplat:dev",
        host="refplat-redis",
        port=6379,
        connect_timeout_s=connect_timeout_s,
    )


def test_the_intruder_pod_meets_pod_security_restricted() -> None:
    spec = pod()["spec"]
    (container,) = spec["containers"]
    assert {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}.items() <= spec[
        "securityContext"
    ].items()
    assert {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }.items() <= container["securityContext"].items()
    assert not {"hostNetwork", "hostPID", "hostIPC", "volumes"} & spec.keys()
    assert "ports" not in container


@pytest.mark.parametrize(
    ("timeout_s", "deadline_s"), [(5, 35), (0.5, 31), (12.2, 43)], ids=["5s", "half-s", "12.2s"]
)
def test_the_intruder_pod_runs_once_without_credentials_and_within_a_deadline(
    timeout_s: float, deadline_s: int
) -> None:
    spec = pod(timeout_s)["spec"]
    assert (deadline_s, "Never", False, 0) == (
        spec["activeDeadlineSeconds"],
        spec["restartPolicy"],
        spec["automountServiceAccountToken"],
        spec["terminationGracePeriodSeconds"],
    )
    assert ["refplat-redis", "6379", f"{timeout_s:g}"] == spec["containers"][0]["command"][-3:]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector's verdict on ``labels`` (In / NotIn / Exists / DoesNotExist)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        found = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not found:
            return False
    return True


def test_no_network_policy_allows_the_intruder_anything_but_dns() -> None:
    labels = pod()["metadata"]["labels"]
    allowed: list[str] = []
    for policy in (p for p in yaml.safe_load_all(POLICIES.read_text()) if p):
        name, spec = policy["metadata"]["name"], policy["spec"]
        if spec["podSelector"] and selects(spec["podSelector"], labels):
            allowed.append(f"{name}: selects the intruder")
        for rule in spec.get("ingress") or []:
            peers = [p["podSelector"] for p in rule.get("from") or [] if "podSelector" in p]
            if any(selects(peer, labels) for peer in peers):
                allowed.append(f"{name}: admits it")
    assert [] == allowed
    assert {"default-deny", "allow-dns-egress"} <= {
        p["metadata"]["name"]
        for p in yaml.safe_load_all(POLICIES.read_text())
        if p and not p["spec"]["podSelector"]
    }


def kwok_target(tmp_path: Path) -> KwokTarget:
    settings = load_settings("kube-kwok", repo_root=REPO_ROOT, env={}, overrides=[])
    options = KubeOptions(manifests_dir=REPO_ROOT / "platform" / "manifests", kubectl=Path("x"))
    topology = LocalTopology.from_settings(settings, repo_root=REPO_ROOT)
    return KwokTarget(run_id="unit", run_dir=tmp_path, topology=topology, kube=options)


def missing(experiment: str, capabilities: frozenset[str]) -> set[str]:
    """What the engine finds missing before it runs ``experiment`` (non-empty: SKIPPED)."""
    path = EXPERIMENTS / f"{experiment}.yaml"
    return set(required_capabilities(validate_experiment(path))) - capabilities


@pytest.mark.parametrize("experiment", sorted(IN_CLUSTER), ids=sorted(IN_CLUSTER))
def test_the_in_cluster_experiments_are_skipped_on_kube_kwok_and_run_on_kind(
    tmp_path: Path, experiment: str
) -> None:
    assert IN_CLUSTER[experiment] == missing(experiment, kwok_target(tmp_path).capabilities)
    assert set() == missing(experiment, KindTarget.capabilities)


@pytest.mark.parametrize("experiment", ON_KWOK, ids=ON_KWOK)
def test_the_game_server_experiments_still_run_on_kube_kwok(
    tmp_path: Path, experiment: str
) -> None:
    assert set() == missing(experiment, kwok_target(tmp_path).capabilities)
