"""JUnit XML for CI systems: one testsuite per run, one testcase per SLO result and per fault.

FAIL becomes ``<failure>``, INVALID ``<error>``, SKIPPED and INCONCLUSIVE ``<skipped>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from harness.model import RunRecord, Verdict
from harness.report._format import iso, slo_value

_OUTCOME = {
    Verdict.FAIL: "failure",
    Verdict.INVALID: "error",
    Verdict.SKIPPED: "skipped",
    Verdict.INCONCLUSIVE: "skipped",
}


def junit_tree(run: RunRecord) -> ET.Element:
    """Return the ``<testsuites>`` element describing ``run``."""
    suite = ET.Element("testsuite", name=f"harness {run.profile}", hostname=run.target)
    for result in run.slos:
        name = f"{result.name} [{result.window.name}]"
        case = _case(suite, "slo", name, result.window.duration_s)
        shown = slo_value(result, result.value)
        _outcome(case, result.verdict, f"{result.verdict}: {shown}; {result.detail}")
    for fault in run.faults:
        case = _case(suite, "fault", fault.name, fault.recovery_s or 0.0)
        _outcome(case, fault.status, f"{fault.status}: {fault.detail or fault.experiment}")
    for n, error in enumerate(run.errors, start=1):
        _outcome(_case(suite, "run", f"error {n}", 0.0), Verdict.INVALID, error)
    counts = Counter(child.tag for case in suite for child in case)
    suite.attrib.update(
        tests=str(len(suite)),
        failures=str(counts["failure"]),
        errors=str(counts["error"]),
        skipped=str(counts["skipped"]),
        time=f"{max(0.0, run.ended_at - run.started_at):.3f}",
        timestamp=iso(run.started_at),
        id=run.run_id,
    )
    root = ET.Element("testsuites", name=f"harness run {run.run_id}")
    root.append(suite)
    return root


def write_junit(run: RunRecord, path: Path) -> None:
    """Write the JUnit XML of ``run`` at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tree = ET.ElementTree(junit_tree(run))
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


def _case(suite: ET.Element, group: str, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(suite, "testcase", classname=group, name=name, time=f"{seconds:.3f}")


def _outcome(case: ET.Element, verdict: Verdict, message: str) -> None:
    tag = _OUTCOME.get(verdict)
    if tag is None:
        return
    child = ET.SubElement(case, tag, message=message, type=verdict.value)
    if tag != "skipped":
        child.text = message
