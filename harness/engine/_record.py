"""The run record: the verdict, the exit code and the artifacts, from what the run produced."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.model import (
    ExitCode,
    FaultRecord,
    LoadSummary,
    PhaseRecord,
    RunRecord,
    SloResult,
    Verdict,
    combine_verdicts,
)
from harness.targets import ALERTS_FILE, fired_alerts

EXIT_CODES = {
    Verdict.PASS: ExitCode.PASS,
    Verdict.FAIL: ExitCode.FAIL,
    Verdict.INCONCLUSIVE: ExitCode.FAIL,
}
ARTIFACTS = {
    "timeline": "timeline.jsonl",
    "locust_stats": "locust/locust-stats.json",
    "locust_log": "locust/locust.log",
    "logs": "logs",
    "target": "target.json",
    "series": "series.json",
    "alerts": ALERTS_FILE,
}


@dataclass
class Outcome:
    """What a run produced so far; filled step by step, judged at the end."""

    slos: tuple[SloResult, ...] = ()
    regressions: tuple[SloResult, ...] = ()
    faults: tuple[FaultRecord, ...] = ()
    load: LoadSummary | None = None
    errors: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def build_record(
    *,
    run_id: str,
    profile: str,
    target: str,
    run_dir: Path,
    started: float,
    phases: tuple[PhaseRecord, ...],
    outcome: Outcome,
) -> RunRecord:
    """Judge the run: the worst of its gating SLOs, its faults and its own validity."""
    verdicts = [r.verdict for r in outcome.slos + outcome.regressions if r.severity == "gate"]
    verdicts += [f.status for f in outcome.faults]
    if outcome.invalid:
        verdicts.append(Verdict.INVALID)
    verdict = combine_verdicts(verdicts)
    return RunRecord(
        run_id=run_id,
        profile=profile,
        target=target,
        started_at=started,
        ended_at=time.time(),
        verdict=verdict,
        exit_code=EXIT_CODES.get(verdict, ExitCode.INFRA),
        slos=outcome.slos,
        faults=outcome.faults,
        phases=phases,
        load=outcome.load,
        artifacts=artifacts(run_dir),
        errors=tuple(outcome.invalid + outcome.errors),
        regressions=outcome.regressions,
        alerts=fired_alerts(run_dir / ALERTS_FILE),
    )


def artifacts(run_dir: Path) -> dict[str, str]:
    """The run's files that exist, by name, relative to the run directory."""
    found = {name: rel for name, rel in ARTIFACTS.items() if (run_dir / rel).exists()}
    for journal in sorted((run_dir / "chaos").glob("*.journal.json")):
        found[f"journal:{journal.name.removesuffix('.journal.json')}"] = str(
            journal.relative_to(run_dir)
        )
    return found
