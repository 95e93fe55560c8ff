"""``run.json``: the machine-readable record of one run and the source of every other report.

The shape is a contract (``schema_version`` 1): instants are ISO 8601 UTC strings, durations
are seconds, verdicts are the strings of ``harness.model.Verdict``. :func:`load_run_record` is
the inverse of :func:`run_to_json`: history and re-rendering read runs back through it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypedDict, TypeVar

from harness.model import (
    AlertRecord,
    ExitCode,
    FaultRecord,
    LoadSummary,
    PhaseRecord,
    RunRecord,
    SloResult,
    Verdict,
    Window,
)
from harness.report._format import iso, iso_or_none, parse_iso
from harness.util.errors import ConfigError

SCHEMA_VERSION = 1
# Written by run_to_json since SloResult carried them; older files lack them.
_OPTIONAL_RUN_KEYS = frozenset({"regressions", "alerts"})  # absent from files of older versions
_OPTIONAL_SLO_KEYS = {"samples": 0, "stats": {}, "unit": ""}


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
    samples: int
    stats: dict[str, float]
    unit: str


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


class AlertJson(TypedDict):
    name: str
    start: str
    end: str | None
    labels: dict[str, str]


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
    regressions: list[SloJson]
    alerts: list[AlertJson]


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
        "regressions": [_slo(result) for result in run.regressions],
        "alerts": [_alert(alert) for alert in run.alerts],
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
    missing = sorted(set(RunJson.__annotations__) - set(data) - _OPTIONAL_RUN_KEYS)
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
        "samples": result.samples,
        "stats": dict(result.stats),
        "unit": result.unit,
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


def _alert(alert: AlertRecord) -> AlertJson:
    return {
        "name": alert.name,
        "start": iso(alert.start),
        "end": iso_or_none(alert.end),
        "labels": dict(alert.labels),
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


def load_run_record(path: Path) -> RunRecord:
    """Read a ``run.json`` back into the RunRecord it was written from.

    The inverse of :func:`run_to_json`. Raise ConfigError naming the file and the key when the
    file is not a run.json this harness can read.
    """
    doc: Mapping[str, Any] = read_run_json(path)
    read = _Reader(path)
    started, ended = _instant_pair(
        read.instant(doc, "started_at"),
        read.instant(doc, "ended_at"),
        read.number(doc, "duration_s"),
        rounded=True,
    )
    load = doc["load"]
    return RunRecord(
        run_id=read.text(doc, "run_id"),
        profile=read.text(doc, "profile"),
        target=read.text(doc, "target"),
        started_at=started,
        ended_at=ended,
        verdict=read.verdict(doc, "verdict"),
        exit_code=read.choice(doc, "exit_code", "", kind=ExitCode),
        slos=tuple(read.slo(item, w) for w, item in read.objects(doc, "slos")),
        faults=tuple(read.fault(item, w) for w, item in read.objects(doc, "faults")),
        phases=tuple(read.phase(item, w) for w, item in read.objects(doc, "phases")),
        load=None if load is None else read.load(read.mapping(doc, "load"), "load"),
        artifacts=dict(read.get(doc, "artifacts", "", _object_of(_is_str), "an object of strings")),
        errors=tuple(read.get(doc, "errors", "", _list_of(_is_str), "a list of strings")),
        regressions=tuple(
            read.slo(item, w) for w, item in read.objects({"regressions": [], **doc}, "regressions")
        ),
        alerts=tuple(
            read.alert(item, w) for w, item in read.objects({"alerts": [], **doc}, "alerts")
        ),
    )


def _instant_pair(start: str, end: str, gap: float, *, rounded: bool) -> tuple[float, float]:
    """Return POSIX instants that print as ``start`` and ``end`` and lie ``gap`` seconds apart.

    run.json prints instants to the millisecond but durations from the exact instants, in full
    (``recovery_s``) or rounded to the millisecond (``duration_s``, ``rounded``), so parsing
    alone would change the durations on the way back. Any instant within its printed
    millisecond is as true as another: pick the pair that keeps the duration, or the parsed
    instants when no pair does (a file edited by hand).
    """
    first, last = parse_iso(start), parse_iso(end)

    def keeps(early: float, late: float) -> bool:
        return round(late - early, 3) == gap if rounded else late - early == gap

    if keeps(first, last):
        return first, last
    for want in (gap, gap - 0.00045, gap + 0.00045) if rounded else (gap,):
        low = max(0.0, last - first - want)
        high = min(0.001, last + 0.001 - first - want)
        shifted = first + (low + high) / 2
        moved = shifted + want
        if low < high and keeps(shifted, moved) and (iso(shifted), iso(moved)) == (start, end):
            return shifted, moved
    return first, last


_E = TypeVar("_E", bound=enum.Enum)
_Check = Callable[[Any], bool]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_instant(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_iso(value)
    except ValueError:
        return False
    return True


def _or_null(check: _Check) -> _Check:
    return lambda value: value is None or check(value)


def _list_of(check: _Check) -> _Check:
    return lambda value: isinstance(value, list) and all(check(item) for item in value)


def _object_of(check: _Check) -> _Check:
    return lambda value: isinstance(value, dict) and all(check(v) for v in value.values())


def _is_str(value: object) -> bool:
    return isinstance(value, str)


def _is_object(value: object) -> bool:
    return isinstance(value, dict)


_INSTANT = "an ISO 8601 instant such as 2026-01-01T00:00:00.000Z"


class _Reader:
    """Reads the parts of one run.json document; every complaint names the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, text: str) -> ConfigError:
        return ConfigError(
            f"{self.path}: key '{key}' {text}; the file is damaged: render the run again or "
            "move it out of the reports directory."
        )

    def get(self, obj: Mapping[str, Any], key: str, where: str, check: _Check, want: str) -> Any:
        name = f"{where}.{key}" if where else key
        if key not in obj:
            raise self.fail(name, "is missing")
        value = obj[key]
        if not check(value):
            raise self.fail(name, f"should be {want}, not {value!r}")
        return value

    def text(self, obj: Mapping[str, Any], key: str, where: str = "") -> str:
        return str(self.get(obj, key, where, _is_str, "a string"))

    def number(self, obj: Mapping[str, Any], key: str, where: str = "") -> float:
        value: float = self.get(obj, key, where, _is_number, "a number")
        return value

    def optional_number(self, obj: Mapping[str, Any], key: str, where: str = "") -> float | None:
        value: float | None = self.get(obj, key, where, _or_null(_is_number), "a number or null")
        return value

    def integer(self, obj: Mapping[str, Any], key: str, where: str = "") -> int:
        return int(self.get(obj, key, where, _is_integer, "an integer"))

    def instant(self, obj: Mapping[str, Any], key: str, where: str = "") -> str:
        return str(self.get(obj, key, where, _is_instant, _INSTANT))

    def optional_instant(self, obj: Mapping[str, Any], key: str, where: str) -> str | None:
        value: str | None = self.get(obj, key, where, _or_null(_is_instant), _INSTANT + " or null")
        return value

    def choice(self, obj: Mapping[str, Any], key: str, where: str, *, kind: type[_E]) -> _E:
        value = self.get(obj, key, where, lambda _: True, "")
        members = {member.value: member for member in kind}
        if not isinstance(value, str | int) or isinstance(value, bool) or value not in members:
            names = ", ".join(str(name) for name in members)
            name = f"{where}.{key}" if where else key
            raise self.fail(name, f"should be one of {names}, not {value!r}")
        return members[value]

    def verdict(self, obj: Mapping[str, Any], key: str, where: str = "") -> Verdict:
        return self.choice(obj, key, where, kind=Verdict)

    def mapping(self, obj: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
        value: Mapping[str, Any] = self.get(obj, key, where, _is_object, "an object")
        return value

    def objects(self, obj: Mapping[str, Any], key: str) -> list[tuple[str, Mapping[str, Any]]]:
        items: list[Mapping[str, Any]] = self.get(
            obj, key, "", _list_of(_is_object), "a list of objects"
        )
        return [(f"{key}[{n}]", item) for n, item in enumerate(items)]

    def figures(self, obj: Mapping[str, Any], key: str, where: str = "") -> dict[str, float]:
        value: dict[str, float] = self.get(
            obj, key, where, _object_of(_is_number), "an object of numbers"
        )
        return dict(value)

    def slo(self, obj: Mapping[str, Any], where: str) -> SloResult:
        window, at = self.mapping(obj, "window", where), f"{where}.window"
        filled = {**_OPTIONAL_SLO_KEYS, **obj}
        return SloResult(
            name=self.text(obj, "name", where),
            verdict=self.verdict(obj, "verdict", where),
            value=self.optional_number(obj, "value", where),
            objective=self.number(obj, "objective", where),
            comparator=self.text(obj, "comparator", where),
            window=Window(
                self.text(window, "name", at),
                parse_iso(self.instant(window, "start", at)),
                parse_iso(self.instant(window, "end", at)),
            ),
            severity=self.text(obj, "severity", where),
            detail=self.text(obj, "detail", where),
            query=self.text(obj, "query", where),
            samples=self.integer(filled, "samples", where),
            stats=self.figures(filled, "stats", where),
            unit=self.text(filled, "unit", where),
        )

    def fault(self, obj: Mapping[str, Any], where: str) -> FaultRecord:
        injected = self.optional_instant(obj, "injected_at", where)
        recovered = self.optional_instant(obj, "recovered_at", where)
        recovery = self.optional_number(obj, "recovery_s", where)
        injected_at = None if injected is None else parse_iso(injected)
        recovered_at = None if recovered is None else parse_iso(recovered)
        if injected is not None and recovered is not None and recovery is not None:
            injected_at, recovered_at = _instant_pair(injected, recovered, recovery, rounded=False)
        return FaultRecord(
            name=self.text(obj, "name", where),
            experiment=self.text(obj, "experiment", where),
            injected_at=injected_at,
            recovered_at=recovered_at,
            status=self.verdict(obj, "status", where),
            detail=self.text(obj, "detail", where),
        )

    def alert(self, obj: Mapping[str, Any], where: str) -> AlertRecord:
        end = self.optional_instant(obj, "end", where)
        labels = self.get(obj, "labels", where, _object_of(_is_str), "an object of strings")
        return AlertRecord(
            name=self.text(obj, "name", where),
            start=parse_iso(self.instant(obj, "start", where)),
            end=None if end is None else parse_iso(end),
            labels=dict(labels),
        )

    def phase(self, obj: Mapping[str, Any], where: str) -> PhaseRecord:
        start, end = _instant_pair(
            self.instant(obj, "start", where),
            self.instant(obj, "end", where),
            self.number(obj, "duration_s", where),
            rounded=True,
        )
        return PhaseRecord(self.text(obj, "name", where), start, end)

    def load(self, obj: Mapping[str, Any], where: str) -> LoadSummary:
        by_name, names = self.mapping(obj, "by_name", where), f"{where}.by_name"
        phases, inner = self.mapping(obj, "phases", where), f"{where}.phases"
        return LoadSummary(
            requests=self.integer(obj, "requests", where),
            failures=self.integer(obj, "failures", where),
            p50_ms=self.optional_number(obj, "p50_ms", where),
            p99_ms=self.optional_number(obj, "p99_ms", where),
            rps=self.optional_number(obj, "rps", where),
            by_name={name: self.figures(by_name, name, names) for name in by_name},
            by_phase={
                name: self.load(self.mapping(phases, name, inner), f"{inner}.{name}")
                for name in phases
            },
        )
