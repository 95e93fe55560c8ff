"""Chaos Toolkit driver: the one module that imports chaoslib.

Experiments are validated before anything starts (so a broken file costs no deployment) and
run in this process with the target file passed as a configuration override; the journal is
written beside the run.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.model import Verdict
from harness.util.errors import ConfigError, DriverError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChaosOutcome:
    """What one experiment run came to."""

    experiment: str
    status: str  # chaoslib's: completed, failed, aborted, interrupted
    deviated: bool
    journal_path: Path
    failed_activities: tuple[str, ...]

    @property
    def detail(self) -> str:
        """One sentence on what happened, for reports."""
        if self.deviated:
            return "the steady-state hypothesis deviated after the fault"
        if self.failed_activities:
            return f"activities failed: {', '.join(self.failed_activities)}"
        return f"experiment {self.status}"

    @property
    def verdict(self) -> Verdict:
        """FAIL when the hypothesis deviated; INVALID when the experiment itself broke."""
        if self.deviated:
            return Verdict.FAIL
        if self.status != "completed" or self.failed_activities:
            return Verdict.INVALID
        return Verdict.PASS


def validate_experiment(path: Path) -> dict[str, Any]:
    """Load and validate one experiment file; ConfigError names the file, the line and the fix."""
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid

    text = _read(path)
    try:
        experiment = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark is not None else "?"
        raise ConfigError(
            f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}."
        ) from None
    if not isinstance(experiment, dict):
        raise ConfigError(f"{path}:1: an experiment must be a YAML mapping.")
    try:
        ensure_experiment_is_valid(experiment)
    except ChaosException as exc:
        raise ConfigError(f"{path}:{_line_of(text, str(exc))}: invalid experiment: {exc}") from None
    return experiment


def _harness_extension(experiment: dict[str, Any], key: str) -> tuple[str, ...]:
    """Values of ``key`` in the experiment's ``harness`` extension::

    extensions:
      - name: harness
        requires: [kill-process, partition]   # capabilities it needs from the target
        faults: [api-replica-kill]            # fault names it records on the timeline
    """
    found: list[str] = []
    for ext in experiment.get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == "harness":
            found += [str(v) for v in ext.get(key) or []]
    return tuple(found)


def required_capabilities(experiment: dict[str, Any]) -> tuple[str, ...]:
    """Capabilities an experiment needs from its target."""
    return _harness_extension(experiment, "requires")


def declared_faults(experiment: dict[str, Any]) -> tuple[str, ...]:
    """Names of the faults an experiment injects (so a skipped one can skip their SLOs)."""
    return _harness_extension(experiment, "faults")


def run_experiment(path: Path, *, config_vars: dict[str, Any], journal_path: Path) -> ChaosOutcome:
    """Run one experiment; the journal is saved to ``journal_path`` on every path."""
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import run_experiment as chaos_run

    experiment = validate_experiment(path)
    log.info("chaos: running %s", path)
    try:
        journal: dict[str, Any] = chaos_run(
            experiment, settings={}, experiment_vars=(dict(config_vars), {})
        )
    except ChaosException as exc:
        raise DriverError(f"Chaos Toolkit could not run {path}: {exc}") from exc
    journal_path.parent.mkdir(parents=True, exist_ok=True)
    journal_path.write_text(json.dumps(journal, indent=2, default=str))
    failed = tuple(
        run["activity"]["name"]
        for run in journal.get("run", [])
        if run.get("status") != "succeeded"
    )
    return ChaosOutcome(
        experiment=str(path),
        status=str(journal.get("status")),
        deviated=bool(journal.get("deviated")),
        journal_path=journal_path,
        failed_activities=failed,
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such experiment file.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the experiment: {exc}.") from None


def _line_of(text: str, message: str) -> str:
    """Best line for one of chaoslib's messages, which quote names but give no lines.

    When the message names an activity, look inside that activity's block for the other quoted
    names (the most specific, quoted last, first); else the first quoted name found anywhere.
    """
    names = re.findall(r"'([^']+)'", message)
    lines = text.splitlines()
    activity = re.search(r"(?:activity|action|probe) '([^']+)'", message)
    if activity:
        start = next(
            (
                i
                for i, row in enumerate(lines)
                if re.search(rf"name:\s*['\"]?{re.escape(activity.group(1))}['\"]?\s*$", row)
            ),
            None,
        )
        if start is not None:
            end = next(
                (i for i in range(start + 1, len(lines)) if re.match(r"\s*- type:", lines[i])),
                len(lines),
            )
            for name in reversed([n for n in names if n != activity.group(1)]):
                for i in range(start, end):
                    if name in lines[i]:
                        return str(i + 1)
            return str(start + 1)
    for name in names:
        for number, row in enumerate(lines, start=1):
            if name in row:
                return str(number)
    return "1"
