"""The ``topology.audit`` switch, the ``audit`` capability and the audit_chain_valid probe's
refusals (the probe on a real platform is in tests/integration/test_platform_probes.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from harness.chaos._target import ActivityFailed
from harness.chaos.platform import probes
from harness.config import load_settings
from harness.drivers.chaos import required_capabilities, validate_experiment
from harness.model import Endpoints
from harness.targets import LocalTarget, LocalTopology

REPO_ROOT = Path(__file__).resolve().parents[2]
AUDITED = ("controller-leader-freeze", "redis-primary-failover")


def target(tmp_path: Path, profile: str, *overrides: str) -> LocalTarget:
    settings = load_settings(profile, repo_root=REPO_ROOT, env={}, overrides=list(overrides))
    topology = LocalTopology.from_settings(settings, repo_root=REPO_ROOT)
    return LocalTarget(run_id="unit", run_dir=tmp_path, topology=topology)


def endpoints(tmp_path: Path, **extra: str) -> Endpoints:
    return Endpoints(
        run_id="unit",
        target="local",
        run_dir=str(tmp_path),
        api_url="http://127.0.0.1:9",
        admin_token_file=str(tmp_path / "admin-token"),
        redis_url="redis://127.0.0.1:9/0",
        prometheus_url="",
        timeline_file=str(tmp_path / "timeline.jsonl"),
        extra=extra,
    )


def profiles_running(experiments: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((REPO_ROOT / "profiles").glob("*.yaml")):
        listed = yaml.safe_load(path.read_text()).get("experiments") or []
        if any(Path(e).stem in experiments for e in listed):
            found.append(path.stem)
    return found


def test_without_the_switch_the_target_lacks_audit_and_says_which_setting_to_turn_on(
    tmp_path: Path,
) -> None:
    off = target(tmp_path, "smoke")
    on = target(tmp_path, "smoke", "topology.audit=true")

    assert (False, True) == ("audit" in off.capabilities, "audit" in on.capabilities)
    assert off.capability_gaps["audit"].startswith("topology.audit is off in this profile")
    assert "audit" not in on.capability_gaps


@pytest.mark.parametrize("experiment", AUDITED, ids=AUDITED)
def test_the_experiments_that_check_the_audit_chain_require_audit(experiment: str) -> None:
    path = REPO_ROOT / "experiments" / f"{experiment}.yaml"

    assert "audit" in required_capabilities(validate_experiment(path))


@pytest.mark.parametrize("profile", profiles_running(AUDITED))
def test_every_profile_running_them_turns_audit_on(tmp_path: Path, profile: str) -> None:
    assert "audit" in target(tmp_path, profile).capabilities


def test_the_probe_refuses_a_run_without_an_audit_key_and_names_the_switch(
    tmp_path: Path,
) -> None:
    target_file = tmp_path / "target.json"
    endpoints(tmp_path).write(target_file)

    with pytest.raises(ActivityFailed, match=r"holds no audit key.*topology: \{audit: true\}"):
        probes.audit_chain_valid(str(target_file))


def test_the_verifier_reads_the_primary_through_the_sentinels_when_the_run_has_them(
    tmp_path: Path,
) -> None:
    plain = endpoints(tmp_path)
    sentinel = endpoints(
        tmp_path, redis_sentinels="127.0.0.1:26379,127.0.0.1:26380", redis_master="refplat"
    )
    verify = [sys.executable, "-m", "refplat", "audit", "verify"]

    assert [*verify, "--redis-url", "redis://127.0.0.1:9/0"] == probes.verify_command(plain)
    assert [
        *verify,
        *("--redis-sentinel", "127.0.0.1:26379", "--redis-sentinel", "127.0.0.1:26380"),
        *("--redis-master", "refplat"),
    ] == probes.verify_command(sentinel)


def test_an_unreadable_audit_key_file_fails_the_probe_naming_the_verifier(tmp_path: Path) -> None:
    key_file = tmp_path / "audit-keys"
    key_file.write_text("not a key\n")
    target_file = tmp_path / "target.json"
    endpoints(tmp_path, audit_key_file=str(key_file)).write(target_file)

    with pytest.raises(ActivityFailed, match=r"refplat audit verify failed \(exit 2\)"):
        probes.audit_chain_valid(str(target_file))
