"""``run.json``: the machine-readable record of one run and the source of every other report.

The shape is a contract (``schema_version`` 1): instants are ISO 8601 UTC strings, durations
are seconds, verdicts are the strings of ``harness.model.Verdict``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from harness.model import FaultRecord, LoadSummary, PhaseRecord, RunRecord, SloResult
from harness.report._format import iso, iso_or_none
from harness.util.errors import ConfigError

SCHEMA_VERSION = 1


class WindowJson(TypedDict):
    name: str
    start: str
    end: str


class SloJson(TypedDict):
    name: str
    verdict: str
    value: float | None
    objective: float
    comparator: str
    severity: str
    window: WindowJson
    detail: str
    query: str


class FaultJson(TypedDict):
    name: str
    experiment: str
    injected_at: str | None
    recovered_at: str | None
    recovery_s: float | None
    status: str
    detail: str


class PhaseJson(TypedDict):
    name: str
    start: str
    end: str
    duration_s: float


class LoadJson(TypedDict):
    requests: int
    failures: int
    p50_ms: float | None
    p99_ms: float | None
    rps: float | None
    by_name: dict[str, dict[str, float]]
    phases: dict[str, LoadJson]


class RunJson(TypedDict):
    schema_version: int
    run_id: str
    profile: str
    target: str
    started_at: str
    ended_at: str
    duration_s: float
    verdict: str
    exit_code: int
    slos: list[SloJson]
    faults: list[FaultJson]
    phases: list[PhaseJson]
    load: LoadJson | None
    artifacts: dict[str, str]
    errors: list[str]


def run_to_json(run: RunRecord) -> RunJson:
    """Return the ``run.json`` document of ``run``."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run.run_id,
        "profile": run.profile,
        "target": run.target,
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
        "duration_s": round(run.ended_at - run.started_at, 3),
        "verdict": run.verdict.value,
        "exit_code": int(run.exit_code),
        "slos": [_slo(result) for result in run.slos],
        "faults": [_fault(fault) for fault in run.faults],
        "phases": [_phase(phase) for phase in run.phases],
        "load": None if run.load is None else _load(run.load),
        "artifacts": dict(run.artifacts),
        "errors": list(run.errors),
    }


def write_run_json(run: RunRecord, path: Path) -> None:
    """Write ``run.json`` for ``run`` at ``path`` (atomically: a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(run_to_json(run), indent=2, ensure_ascii=False) + "\n")
    partial.replace(path)


def read_run_json(path: Path) -> RunJson:
    """Read a ``run.json``; raise ConfigError when it is not one this harness can read."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read it as JSON ({exc}); pass a run.json.") from exc
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: schema_version is {version!r}, this harness reads {SCHEMA_VERSION}; "
            "render it with the harness version that wrote it."
        )
    missing = sorted(set(RunJson.__annotations__) - set(data))
    if missing:
        raise ConfigError(f"{path}: missing keys {', '.join(missing)}; the file is damaged.")
    result: RunJson = data
    return result


def _slo(result: SloResult) -> SloJson:
    window = result.window
    return {
        "name": result.name,
        "verdict": result.verdict.value,
        "value": result.value,
        "objective": result.objective,
        "comparator": result.comparator,
        "severity": result.severity,
        "window": {"name": window.name, "start": iso(window.start), "end": iso(window.end)},
        "detail": result.detail,
        "query": result.query,
    }


def _fault(fault: FaultRecord) -> FaultJson:
    return {
        "name": fault.name,
        "experiment": fault.experiment,
        "injected_at": iso_or_none(fault.injected_at),
        "recovered_at": iso_or_none(fault.recovered_at),
        "recovery_s": fault.recovery_s,
        "status": fault.status.value,
        "detail": fault.detail,
    }


def _phase(phase: PhaseRecord) -> PhaseJson:
    return {
        "name": phase.name,
        "start": iso(phase.start),
        "end": iso(phase.end),
        "duration_s": round(phase.end - phase.start, 3),
    }


def _load(load: LoadSummary) -> LoadJson:
    return {
        "requests": load.requests,
        "failures": load.failures,
        "p50_ms": load.p50_ms,
        "p99_ms": load.p99_ms,
        "rps": load.rps,
        "by_name": {name: dict(stats) for name, stats in load.by_name.items()},
        "phases": {name: _load(phase) for name, phase in load.by_phase.items()},
    }
