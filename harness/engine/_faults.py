"""Fault records: the experiment outcomes joined with the instants on the timeline."""

from __future__ import annotations

from collections.abc import Sequence, Set
from dataclasses import replace
from pathlib import Path

from harness.engine.timeline import Timeline
from harness.model import FaultRecord, PhaseRecord, SloResult, Verdict
from harness.slo import is_distribution


def fault_records(timeline: Timeline, outcomes: Sequence[FaultRecord]) -> tuple[FaultRecord, ...]:
    """One record per fault injected inside each experiment's phase (``fault:<file stem>``,
    ``fault:<file stem>#2`` for the experiment's second run, ...).

    ``outcomes`` holds one record per experiment run, or the SKIPPED records of an experiment
    that was not run. An experiment that ran but injected nothing yields one INVALID record:
    the fault was not applied, so nothing about recovery can be concluded.
    """
    phases = list(timeline.phases())
    injected = [e for e in timeline.faults() if e.get("event") == "injected"]
    records: list[FaultRecord] = []
    runs: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.status is Verdict.SKIPPED:
            records.append(outcome)
            continue
        stem = Path(outcome.experiment).stem
        runs[stem] = runs.get(stem, 0) + 1
        phase = _experiment_phase(phases, stem, runs[stem])
        inside = [e for e in injected if phase and phase.start <= e["at"] <= phase.end]
        if not inside:
            detail = f"the fault was not applied ({outcome.detail})"
            records.append(replace(outcome, status=Verdict.INVALID, detail=detail))
            continue
        records += [
            replace(outcome, name=e["name"], injected_at=e["at"], detail=_detail(e, outcome))
            for e in inside
        ]
    return tuple(records)


def with_recoveries(
    faults: Sequence[FaultRecord], results: Sequence[SloResult], recovery_slos: Set[str]
) -> tuple[FaultRecord, ...]:
    """Fill each fault's recovery instant from the recovery-time SLOs measured over it.

    A recovery-time result's window starts at its fault's injection; with several such SLOs on
    one fault, the slowest recovery is the fault's. A fault that such an SLO judged without a
    value did not recover, and says so.
    """
    out = []
    for fault in faults:
        judged = [
            r
            for r in results
            if r.name in recovery_slos
            and not is_distribution(r)
            and fault.injected_at is not None
            and r.window.start == fault.injected_at
        ]
        values = [r.value for r in judged if r.value is not None]
        if values and fault.injected_at is not None:
            out.append(replace(fault, recovered_at=fault.injected_at + max(values)))
        elif judged:
            out.append(replace(fault, detail=f"not recovered; {fault.detail}"))
        else:
            out.append(fault)
    return tuple(out)


def _experiment_phase(phases: Sequence[PhaseRecord], stem: str, run: int) -> PhaseRecord | None:
    name = f"fault:{stem}" if run == 1 else f"fault:{stem}#{run}"
    found = [p for p in phases if p.name == name]
    return found[-1] if found else None


def _detail(event: dict[str, object] | object, outcome: FaultRecord) -> str:
    parts = []
    if isinstance(event, dict):
        if event.get("target"):
            parts.append(f"on {event['target']}")
        if event.get("detail"):
            parts.append(str(event["detail"]))
    parts.append(outcome.detail)
    return "; ".join(parts)
