"""Measuring SLOs: choosing their windows and querying Prometheus (the I/O half of evaluation).

Each SLO is judged over one or more windows: the whole run, a named phase, or each fault (from
its injection to the end of the phase it happened in). Queries are evaluated at the window end
with ``$window`` replaced by the window's duration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from harness.model import FaultRecord, PhaseRecord, SloResult, Window
from harness.slo._judge import Measurement, judge
from harness.slo._promql import range_text, render
from harness.slo._query import PromQuery, Sample
from harness.slo._spec import (
    WINDOW_EACH_FAULT,
    WINDOW_RUN,
    Comparator,
    IndicatorKind,
    SloSpec,
)
from harness.util.errors import HarnessError


@dataclass(frozen=True)
class Scope:
    """One window an SLO is judged over, the fault it concerns, or why it cannot be judged."""

    window: Window
    fault: FaultRecord | None = None
    invalid: str = ""


def evaluate_slos(
    specs: Sequence[SloSpec],
    *,
    prom: PromQuery,
    run_window: Window,
    phases: Sequence[PhaseRecord],
    faults: Sequence[FaultRecord],
    external: Mapping[str, float | None],
) -> tuple[SloResult, ...]:
    """Measure and judge every SLO over each of its windows; a failed query makes it INVALID."""
    results: list[SloResult] = []
    for spec in specs:
        for scope in scopes(spec, run_window=run_window, phases=phases, faults=faults):
            results.append(judge(spec, _measure_scope(spec, scope, prom, external), scope.window))
    return tuple(results)


def _measure_scope(
    spec: SloSpec, scope: Scope, prom: PromQuery, external: Mapping[str, float | None]
) -> Measurement:
    if scope.invalid:
        return Measurement(value=None, invalid=scope.invalid)
    try:
        return measure(spec, prom=prom, window=scope.window, fault=scope.fault, external=external)
    except HarnessError as exc:
        return Measurement(value=None, invalid=f"Prometheus could not answer: {exc}")


def scopes(
    spec: SloSpec,
    *,
    run_window: Window,
    phases: Sequence[PhaseRecord],
    faults: Sequence[FaultRecord],
) -> list[Scope]:
    """Return the windows ``spec`` is judged over in a run with these phases and faults."""
    base = _base_window(spec.window, run_window, phases)
    wanted = spec.indicator.fault
    per_fault = (
        spec.window == WINDOW_EACH_FAULT or spec.indicator.kind is IndicatorKind.RECOVERY_TIME
    )
    if not per_fault:
        return [Scope(window=base or run_window, invalid=_missing_phase(spec, base))]
    matching = [f for f in faults if not wanted or f.name == wanted]
    if not matching:
        invalid = (
            f"the fault '{wanted}' was not applied in this run"
            if wanted
            else "no fault was applied in this run"
        )
        return [Scope(window=run_window, invalid=invalid)]
    return [
        _fault_scope(spec, fault, n, base=base, run_window=run_window, phases=phases)
        for n, fault in _numbered(matching)
    ]


def _fault_scope(
    spec: SloSpec,
    fault: FaultRecord,
    name: str,
    *,
    base: Window | None,
    run_window: Window,
    phases: Sequence[PhaseRecord],
) -> Scope:
    if spec.window != WINDOW_EACH_FAULT:
        window = base or run_window
        return Scope(window=window, fault=fault, invalid=_missing_phase(spec, base))
    if fault.injected_at is None:
        invalid = f"the fault '{fault.name}' was not applied (it has no injection time)"
        return Scope(window=Window(name, run_window.start, run_window.end), invalid=invalid)
    # Recovery may come after the fault's own phase: look for it until the run's end.
    end = (
        run_window.end
        if spec.indicator.kind is IndicatorKind.RECOVERY_TIME
        else _phase_end(fault.injected_at, phases) or run_window.end
    )
    return Scope(window=Window(name, fault.injected_at, end), fault=fault)


def _numbered(faults: Sequence[FaultRecord]) -> list[tuple[str, FaultRecord]]:
    seen: dict[str, int] = {}
    named = []
    for fault in faults:
        seen[fault.name] = seen.get(fault.name, 0) + 1
        count = seen[fault.name]
        named.append((fault.name if count == 1 else f"{fault.name}#{count}", fault))
    return named


def _base_window(name: str, run_window: Window, phases: Sequence[PhaseRecord]) -> Window | None:
    if name in (WINDOW_RUN, WINDOW_EACH_FAULT):
        return run_window
    found = [p for p in phases if p.name == name]
    return Window(name, found[-1].start, found[-1].end) if found else None


def _missing_phase(spec: SloSpec, base: Window | None) -> str:
    return "" if base is not None else f"the phase '{spec.window}' was not recorded in this run"


def _phase_end(instant: float, phases: Sequence[PhaseRecord]) -> float | None:
    holding = [p for p in phases if p.start <= instant <= p.end]
    return max(holding, key=lambda p: p.start).end if holding else None


def measure(
    spec: SloSpec,
    *,
    prom: PromQuery,
    window: Window,
    fault: FaultRecord | None,
    external: Mapping[str, float | None],
) -> Measurement:
    """Measure ``spec`` over ``window`` (for ``fault`` when per fault); raises HarnessError."""
    match spec.indicator.kind:
        case IndicatorKind.THRESHOLD:
            return _threshold(spec, prom, window)
        case IndicatorKind.RATIO:
            return _ratio(spec.indicator.good, spec.indicator.total, prom, window)
        case IndicatorKind.PROBE_UPTIME:
            return _probe_uptime(spec.indicator.job, prom, window)
        case IndicatorKind.RECOVERY_TIME:
            return _recovery(spec, prom, window, fault)
        case IndicatorKind.SESSIONS_PRESERVED:
            return _external(spec, window, external)


def _values(samples: Sequence[Sample]) -> list[float]:
    return [value for _, value in samples if math.isfinite(value)]


def _threshold(spec: SloSpec, prom: PromQuery, window: Window) -> Measurement:
    query = render(spec.indicator.promql, window)
    values = _values(prom.instant(query, window.end))
    if not values:
        return Measurement(value=None, query=query, notes=("the query returned no value",))
    lower_is_better = spec.comparator in (Comparator.LE, Comparator.LT)
    worst = max(values) if lower_is_better else min(values)
    notes = (f"worst of {len(values)} series",) if len(values) > 1 else ()
    return Measurement(value=worst, samples=len(values), query=query, notes=notes)


def _ratio(good: str, total: str, prom: PromQuery, window: Window) -> Measurement:
    good_q, total_q = render(good, window), render(total, window)
    query = f"({good_q}) / ({total_q})"
    total_n = sum(_values(prom.instant(total_q, window.end)))
    if total_n <= 0:
        return Measurement(value=None, query=query, notes=("no events were counted",))
    good_n = sum(_values(prom.instant(good_q, window.end)))
    return Measurement(value=good_n / total_n, samples=round(total_n), query=query)


def _probe_uptime(job: str, prom: PromQuery, window: Window) -> Measurement:
    series = f'probe_success{{job="{job}"}}[{range_text(window)}]'
    good_q, count_q = f"sum(sum_over_time({series}))", f"sum(count_over_time({series}))"
    query = f"{good_q} / {count_q}"
    count = sum(_values(prom.instant(count_q, window.end)))
    if count <= 0:
        return Measurement(value=None, query=query, notes=(f"no probes of job '{job}'",))
    good = sum(_values(prom.instant(good_q, window.end)))
    return Measurement(value=good / count, samples=round(count), query=query)


def _recovery(
    spec: SloSpec, prom: PromQuery, window: Window, fault: FaultRecord | None
) -> Measurement:
    query = render(spec.indicator.promql, window)
    if fault is None or fault.injected_at is None:
        name = fault.name if fault else spec.indicator.fault
        return Measurement(value=None, query=query, invalid=f"the fault '{name}' was not applied")
    values = _values(prom.instant(query, window.end))
    if not values:
        return Measurement(value=None, query=query, notes=("the query returned no timestamp",))
    seen, injected = max(values), fault.injected_at
    if seen < injected:
        failure = (
            f"not recovered: the latest sign of recovery ({_clock(seen)}) is before the "
            f"fault '{fault.name}' injected at {_clock(injected)}, checked at {_clock(window.end)}"
        )
        return Measurement(value=None, samples=1, query=query, failure=failure)
    note = f"fault '{fault.name}' injected at {_clock(injected)}"
    return Measurement(value=seen - injected, samples=1, query=query, notes=(note,))


def _external(spec: SloSpec, window: Window, external: Mapping[str, float | None]) -> Measurement:
    for key in (f"{spec.name}@{window.name}", spec.name):
        if key in external:
            value = external[key]
            return Measurement(value=value, samples=0 if value is None else 1)
    return Measurement(value=None, notes=("the engine supplied no measurement",))


def _clock(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).isoformat(timespec="milliseconds")
