"""The namespaced target's life cycle: `kill -9` of the harness mid-run, then `harness down`,
removes every network namespace (with the nftables tables and veths inside them) and process;
without root the same profile runs on loopback and its partition experiment is SKIPPED."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.targets._netns import netns_supported
from tests.integration.conftest import CONTENT, REPO_ROOT, only_run
from tests.integration.test_teardown import leftovers, wait_for_deploy

pytestmark = pytest.mark.integration

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def links() -> str:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, timeout=10)
    return out.stdout


def test_harness_down_after_kill_9_leaves_no_namespace_table_or_process(workdir: Path) -> None:
    if not netns_supported():
        pytest.skip("network namespaces need root with `ip` and `nft`; this user lacks them")
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "certify", "--profile", "local-netns"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_dir = wait_for_deploy(workdir, proc)
    deadline = time.monotonic() + 60
    while '"locust"' not in (run_dir / "ledger.json").read_text():  # mid-run: load is running
        assert time.monotonic() < deadline, "Locust never started"
        time.sleep(0.2)
    created = set(json.loads((run_dir / "netns.json").read_text())["namespaces"])
    assert created and created <= namespaces()
    veth = "g" + sorted(created)[0].split("-")[1]  # the fabric's veth in the root namespace
    assert veth in links()
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert "" != leftovers(run_dir)  # the platform and its namespaces outlived the harness
    down = subprocess.run(
        [sys.executable, "-m", "harness.cli", "down"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 0 == down.returncode, down.stderr
    assert "" == leftovers(run_dir)
    # nftables tables and veths live inside the namespaces; the root end goes with its peer.
    assert set() == created & namespaces(), "namespaces left behind"
    assert veth not in links(), "the fabric's veth is left in the root namespace"


def python_for_nobody() -> str:
    """A Python of this version that ``nobody`` may run: this one, else the system's (a
    virtual environment's interpreter may live under root's private home)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        # It must also start itself again (as the harness starts refplat and Locust).
        code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'pass'], check=True)"
        check = [*AS_NOBODY, candidate, "-c", f"{code}; print(sys.version_info[:2])"]
        try:
            out = subprocess.run(check, capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == str(tuple(sys.version_info[:2])):
            return candidate
    pytest.skip(f"no {version} that the user nobody may execute (the venv's is under /root)")


@pytest.fixture
def nobody_workdir() -> Iterator[Path]:
    """A copy of the repository's content owned by ``nobody``, outside root's private tmp."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("running the target as another user needs root and setpriv")
    base = Path(tempfile.mkdtemp(prefix="gsh-nobody-", dir="/tmp"))
    try:
        for name in CONTENT:
            shutil.copytree(REPO_ROOT / name, base / name)
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(base)], check=True, timeout=30)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_without_root_a_netns_profile_runs_on_loopback_and_skips_partitions(
    nobody_workdir: Path,
) -> None:
    profile = (nobody_workdir / "profiles" / "local-netns.yaml").read_text()
    (nobody_workdir / "profiles" / "local-netns.yaml").write_text(
        profile.replace(
            "{warmup_s: 5, baseline_s: 5, recovery_s: 8}",
            "{warmup_s: 2, baseline_s: 3, recovery_s: 5}",
        )
    )
    python = python_for_nobody()
    # The run's Locust: the same package, started by an interpreter ``nobody`` may execute.
    shim = nobody_workdir / "bin" / "locust"
    shim.parent.mkdir()
    shim.write_text(f"#!{python}\nimport sys\nfrom locust.main import main\nsys.exit(main())\n")
    shim.chmod(0o755)
    packages = sysconfig.get_paths()["purelib"]
    env = {
        **os.environ,
        "HOME": str(nobody_workdir),
        "PATH": f"{shim.parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'platform'}:{packages}",
    }
    result = subprocess.run(
        [*AS_NOBODY, python, "-m", "harness.cli", "certify", "--profile", "local-netns"],
        cwd=nobody_workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (nobody_workdir / "reports").is_dir(), result.stdout[-2000:] + result.stderr[-3000:]
    run_dir, data = only_run(nobody_workdir / "reports")
    faults = {f["name"]: (f["status"], f["detail"]) for f in data["faults"]}
    assert "api-replica-partition" in faults, result.stdout[-3000:]
    status, detail = faults["api-replica-partition"]
    assert "SKIPPED" == status, detail
    assert "lacks partition" in detail and f"uid {NOBODY}" in detail, detail
    assert "SKIPPED" != faults["controller-leader-kill"][0]  # what it can do, it did
    target = json.loads((run_dir / "target.json").read_text())
    assert not target.get("hosts"), "no namespaces without root"
    assert not (run_dir / "netns.json").exists()
    assert result.returncode in (0, 1), result.stderr[-3000:]
