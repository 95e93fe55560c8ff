"""An experiment that needs what the target cannot do is SKIPPED with the reason, never passed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import only_run, run_harness

pytestmark = pytest.mark.integration


def test_an_experiment_needing_a_missing_capability_is_skipped(workdir: Path) -> None:
    source = (workdir / "experiments" / "api-replica-kill.yaml").read_text()
    (workdir / "experiments" / "needs-partition.yaml").write_text(
        source.replace("requires: [kill-process]", "requires: [kill-process, partition]")
    )
    (workdir / "slos" / "short.yaml").write_text(
        "slos:\n"
        "  - name: api-availability\n"
        "    indicator: {kind: probe-uptime, job: probe-api}\n"
        "    objective: 0.95\n"  # ~3 s of probes resolve a 5 % budget, not a 0.1 % one
        "    comparator: '>='\n"
        "    window: run\n"
        "  - name: replica-recovery\n"
        "    indicator: {kind: recovery-time, fault: api-replica-kill, promql: 'vector(0)'}\n"
        "    objective: 30\n"
        "    comparator: '<='\n"
        "    window: each-fault\n"
    )
    (workdir / "profiles" / "short.yaml").write_text(
        "name: short\n"
        "phases: {warmup_s: 1, baseline_s: 1, recovery_s: 1}\n"
        "experiments: [experiments/needs-partition.yaml]\n"
        "slos: slos/short.yaml\n"
    )
    result = run_harness("certify", "--profile", "short", cwd=workdir)
    _, data = only_run(workdir / "reports")
    (fault,) = data["faults"]
    assert ("api-replica-kill", "SKIPPED") == (fault["name"], fault["status"])
    assert "lacks partition" in fault["detail"]
    verdicts = {s["name"]: s["verdict"] for s in data["slos"]}
    assert {"api-availability": "PASS", "replica-recovery": "SKIPPED"} == verdicts
    # What could be checked passed; the skipped experiment is reported, not passed.
    assert ("PASS", 0) == (data["verdict"], result.returncode), result.stderr[-3000:]
    assert "SKIPPED" in result.stdout
