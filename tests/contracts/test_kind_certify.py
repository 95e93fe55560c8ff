"""What `harness certify --target kind` rests on, checked without a container engine: the kind
overlay's Services exposed on the node ports the cluster config publishes, the kind profile's
experiments within the kind target's capabilities, every metric of its SLOs scraped by the run,
and both Prometheus configurations (the host's, federating; the cluster's) accepted by promtool."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config import load_settings
from harness.drivers import chaos
from harness.drivers.prometheus import family_series
from harness.slo import load_slo_file, metric_names, unknown_metric_problems
from harness.targets import NODE_PORTS, KindTarget, _alerts, _configs, host_ports
from harness.targets._kindhost import FEDERATED_JOBS, PROMETHEUS_JOBS, host_scrape_configs
from harness.targets._kube import with_node_ports
from harness.targets._kubescrape import RULES as KUBE_RULES
from harness.util.errors import ConfigError
from refplat.metrics import AgentMetrics, ApiMetrics, ControllerMetrics
from tests.conftest import REPO_ROOT
from tests.contracts.test_manifests import find_kubectl, render, stage_manifests

CLUSTER_CONFIG = REPO_ROOT / "fixtures" / "kind" / "cluster.yaml"
KIND_PROMETHEUS = REPO_ROOT / "platform" / "manifests" / "overlays" / "kind" / "prometheus.yml"
REFPLAT_RULES = REPO_ROOT / "platform" / "manifests" / "base" / "rules" / "refplat.rules.yaml"
NODES = ("gsharness-control-plane", "gsharness-worker", "gsharness-worker2")
# The Kubernetes histograms the kind run's SLOs read, by the host job that scrapes them.
KUBERNETES_FAMILIES = {
    "kube-apiserver": "apiserver_request_duration_seconds",
    "kubelet": "kubelet_pod_start_sli_duration_seconds",
}

pytestmark = pytest.mark.timeout(4000)  # the first render may build kubectl


def host_prometheus_yml(tmp_path: Path) -> str:
    """The host's Prometheus config of a kind run, as KindTarget and LocalObservability make it
    (credentials and rules as files, for promtool to find)."""
    secrets = {name: tmp_path / name for name in ("kube-ca.crt", "kube.crt", "kube.key")}
    for path in secrets.values():
        path.write_text("placeholder\n")
    rules = tmp_path / "alerts.rules.yml"
    rules.write_text(_alerts.local_rules_yml())
    sd_file = tmp_path / "gameservers.json"
    sd_file.write_text("[]")
    control_plane = _configs.kube_control_plane_scrape_jobs(
        apiserver="127.0.0.1:41234",
        ca_file=str(secrets["kube-ca.crt"]),
        cert_file=str(secrets["kube.crt"]),
        key_file=str(secrets["kube.key"]),
    )
    return _configs.prometheus_yml(
        jobs={"haproxy": []},
        blackbox="127.0.0.1:9115",
        api_health_url="http://127.0.0.1:30080/healthz",
        gameservers_sd_file=str(sd_file),
        api_probes=40,
        locust="127.0.0.1:40001",
        rule_files=[str(rules), str(KUBE_RULES)],
        alertmanagers=["127.0.0.1:9093"],
        extra_scrape_configs=host_scrape_configs(
            federate="127.0.0.1:30090",
            control_plane=control_plane,
            apiserver="127.0.0.1:41234",
            nodes=NODES,
        ),
    )


def promtool_check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )


def refplat_series() -> set[str]:
    """Every series name refplat's API, controller and kube runtime (AgentMetrics) export."""
    names: set[str] = set()
    for metrics in (ApiMetrics(), ControllerMetrics(), AgentMetrics()):
        for family in metrics.registry.collect():
            names |= family_series(family.name, family.type)
    return names


def test_the_kind_overlay_exposes_the_node_ports_the_cluster_config_publishes_on_loopback(
    tmp_path: Path,
) -> None:
    objects = render(find_kubectl(), stage_manifests(tmp_path / "manifests"), "kind")
    exposed = with_node_ports(objects, dict(NODE_PORTS))
    services = {o["metadata"]["name"]: o["spec"] for o in exposed if o["kind"] == "Service"}
    node_ports = {
        name: (spec.get("type"), spec["ports"][0].get("nodePort"))
        for name, spec in services.items()
        if spec.get("type") == "NodePort"
    }
    published = host_ports(CLUSTER_CONFIG)

    assert {name: ("NodePort", port) for name, port in NODE_PORTS} == node_ports
    assert {port for _, port in NODE_PORTS} == set(published)
    assert {"127.0.0.1"} == {address for address, _ in published.values()}
    # The overlay itself stays ClusterIP: it installs many times in one cluster (the kube tier).
    assert all(o["spec"].get("type") is None for o in objects if o["kind"] == "Service")


def test_the_kind_profile_runs_only_experiments_the_kind_target_can_inject() -> None:
    settings = load_settings("kind", repo_root=REPO_ROOT, env={}, overrides=[])
    required = {
        path.stem: set(chaos.required_capabilities(chaos.validate_experiment(REPO_ROOT / path)))
        for path in settings.experiments
    }

    assert "loadtests/tenant.py" == str(settings.load.locustfile)
    assert {name: set() for name in required} == {
        name: caps - KindTarget.capabilities for name, caps in required.items()
    }
    assert "slos/kind.yaml" == str(settings.slos)


def test_every_metric_of_the_kind_slos_comes_from_a_job_the_kind_run_scrapes(
    tmp_path: Path,
) -> None:
    specs = load_slo_file(REPO_ROOT / "slos" / "kind.yaml")
    config = yaml.safe_load(host_prometheus_yml(tmp_path))
    scraped = {c["job_name"] for c in config["scrape_configs"]} | set(FEDERATED_JOBS)
    known = refplat_series() | {"probe_success", "up"}
    known |= {
        s for family in KUBERNETES_FAMILIES.values() for s in family_series(family, "histogram")
    }
    jobs_named = {
        job
        for spec in specs
        for job in [*re.findall(r'job="([^"]+)"', spec.indicator.promql), spec.indicator.job]
        if job
    }
    kube_metrics = {
        name
        for spec in specs
        for name in metric_names(spec.indicator.promql)
        if not name.startswith(("refplat_", "probe_"))
    }

    assert [] == unknown_metric_problems(specs, known)
    assert set() == jobs_named - scraped
    assert set() == set(PROMETHEUS_JOBS) - scraped  # what the engine waits for exists
    assert set(KUBERNETES_FAMILIES) <= scraped
    assert {f"{family}_bucket" for family in KUBERNETES_FAMILIES.values()} == kube_metrics


def test_promtool_accepts_the_host_prometheus_config_of_a_kind_run(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(host_prometheus_yml(tmp_path))
    scrape = {c["job_name"]: c for c in yaml.safe_load(config.read_text())["scrape_configs"]}

    checked = promtool_check(config)

    assert 0 == checked.returncode, checked.stdout + checked.stderr
    federate: dict[str, Any] = scrape["refplat-federate"]
    assert (True, False, "/federate") == (
        federate["honor_labels"],
        federate["honor_timestamps"],
        federate["metrics_path"],
    )
    kubelets = scrape["kubelet"]["static_configs"]
    assert [f"/api/v1/nodes/{n}/proxy/metrics" for n in NODES] == [
        group["labels"]["__metrics_path__"] for group in kubelets
    ]


def test_promtool_accepts_the_in_cluster_prometheus_config_of_the_kind_overlay(
    tmp_path: Path,
) -> None:
    """Debian's promtool is built without Kubernetes service discovery: each job's
    ``kubernetes_sd_configs`` is checked here as data (Pods of the run's namespace) and replaced
    by a static target for promtool, which checks the rest (relabelling, rules file)."""
    config = yaml.safe_load(KIND_PROMETHEUS.read_text())
    config["rule_files"] = [str(REFPLAT_RULES)]
    discovery = {}
    for job in config["scrape_configs"]:
        if "kubernetes_sd_configs" in job:
            discovery[job["job_name"]] = job.pop("kubernetes_sd_configs")
            job["static_configs"] = [{"targets": ["pod.invalid:8080"]}]
    checked_file = tmp_path / "prometheus.yml"
    checked_file.write_text(yaml.safe_dump(config))

    checked = promtool_check(checked_file)

    assert 0 == checked.returncode, checked.stdout + checked.stderr
    assert "1s" == config["global"]["scrape_interval"]  # what the host federates each second
    pods_here = [{"role": "pod", "namespaces": {"own_namespace": True}}]
    assert dict.fromkeys(FEDERATED_JOBS, pods_here) == discovery


def test_exposing_a_service_the_overlay_lacks_is_refused_naming_the_services() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "refplat-api"}}

    with pytest.raises(ConfigError) as refused:
        with_node_ports([service], {"prometheus": 30090})

    assert [
        "No Service prometheus in the overlay to expose on a node port (Services: refplat-api)."
    ] == refused.value.problems


def test_the_nightly_kind_workflow_certifies_the_kind_profile_on_the_fixture_cluster() -> None:
    workflow = yaml.safe_load((REPO_ROOT / "docs" / "examples" / "nightly-kind.yml").read_text())
    commands = [step.get("run", "") for step in workflow["jobs"]["certify"]["steps"]]

    assert any("harness certify --target kind --profile kind" in command for command in commands)
    assert any("--config fixtures/kind/cluster.yaml" in command for command in commands)


def test_the_nightly_cluster_workflow_certifies_inside_the_named_cluster_with_its_image() -> None:
    path = REPO_ROOT / "docs" / "examples" / "nightly-cluster.yml"
    workflow = yaml.safe_load(path.read_text())
    commands = " ".join(step.get("run", "") for step in workflow["jobs"]["certify"]["steps"])

    argv = shlex.split(commands.replace("\\\n", " "))
    at = argv.index("certify")
    certify = argv[at : at + 16]
    assert ["certify", "--target", "kube", "--overlay", "kind"] == certify[:5]
    assert {"--context", "--image", "--kubeconfig", "--profile"} <= set(certify)
    assert "kind" == certify[certify.index("--profile") + 1]
    assert "docker push" in commands and "platform/Containerfile" in commands
    assert "$RUNNER_TEMP/kubeconfig" in commands  # written outside the checkout
