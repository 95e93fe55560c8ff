"""Measuring SLOs: choosing their windows and querying Prometheus (the I/O half of evaluation).

Each SLO is judged over one or more windows: the whole run, a named phase, or each fault (from
its injection to the end of the phase it happened in). Queries are evaluated at the window end
with ``$window`` replaced by the window's duration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from harness.model import FaultRecord, PhaseRecord, SloResult, Window
from harness.slo._budget import BurnPair, budget_stats, duration_label, pair_stats, pairs_within
from harness.slo._judge import Measurement, judge
from harness.slo._mttr import distribution, measure_mttr
from harness.slo._promql import range_text, render
from harness.slo._query import PromQuery, Sample
from harness.slo._spec import (
    WINDOW_EACH_FAULT,
    WINDOW_PLACEHOLDER,
    WINDOW_RUN,
    Comparator,
    IndicatorKind,
    SloSpec,
)
from harness.util.errors import HarnessError

_MAX_POINTS = 10_000  # per series of a range query; Prometheus refuses more than 11,000
# Kinds judged once per injection of their fault, whatever their window.
_RECOVERIES = (IndicatorKind.RECOVERY_TIME, IndicatorKind.MTTR)


@dataclass(frozen=True)
class Scope:
    """One window an SLO is judged over, the fault it concerns, or why it cannot be judged."""

    window: Window
    fault: FaultRecord | None = None
    invalid: str = ""
    # A breach first seen after this instant (the next fault of another name) is not this
    # fault's: an MTTR whose indicator held until then recovered in 0 s.
    breach_by: float | None = None


def evaluate_slos(
    specs: Sequence[SloSpec],
    *,
    prom: PromQuery,
    run_window: Window,
    phases: Sequence[PhaseRecord],
    faults: Sequence[FaultRecord],
    external: Mapping[str, float | None],
    scrape_interval_s: float = 1.0,
) -> tuple[SloResult, ...]:
    """Measure and judge every SLO over each of its windows; a failed query makes it INVALID.

    ``scrape_interval_s`` is Prometheus's: the finest time a recovery can be resolved to and
    the default slice of a slice uptime.
    """
    results: list[SloResult] = []
    for spec in specs:
        judged = []
        for scope in scopes(spec, run_window=run_window, phases=phases, faults=faults):
            measured = _measure_scope(spec, scope, prom, external, scrape_interval_s)
            judged.append(judge(spec, measured, scope.window))
        spread = distribution(
            spec, judged, run_window=run_window, faults=faults, resolution_s=scrape_interval_s
        )
        results += judged if spread is None else [*judged, spread]
    return tuple(results)


def _measure_scope(
    spec: SloSpec,
    scope: Scope,
    prom: PromQuery,
    external: Mapping[str, float | None],
    scrape_interval_s: float,
) -> Measurement:
    if scope.invalid:
        return Measurement(value=None, invalid=scope.invalid)
    try:
        return measure(
            spec,
            prom=prom,
            window=scope.window,
            fault=scope.fault,
            external=external,
            scrape_interval_s=scrape_interval_s,
            breach_by=scope.breach_by,
        )
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
    per_fault = spec.window == WINDOW_EACH_FAULT or spec.indicator.kind in _RECOVERIES
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
        _fault_scope(
            spec,
            fault,
            n,
            base=base,
            run_window=run_window,
            phases=phases,
            faults=matching,
            all_faults=faults,
        )
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
    faults: Sequence[FaultRecord],
    all_faults: Sequence[FaultRecord] = (),
) -> Scope:
    if spec.window != WINDOW_EACH_FAULT and spec.indicator.kind is not IndicatorKind.MTTR:
        window = base or run_window
        return Scope(window=window, fault=fault, invalid=_missing_phase(spec, base))
    if fault.injected_at is None:
        invalid = f"the fault '{fault.name}' was not applied (it has no injection time)"
        return Scope(window=Window(name, run_window.start, run_window.end), invalid=invalid)
    # Recovery may come after the fault's own phase: look for it until the run's end, or until
    # the same fault is injected again.
    end = (
        _next_injection(fault, faults, run_window.end)
        if spec.indicator.kind in _RECOVERIES
        else _phase_end(fault.injected_at, phases) or run_window.end
    )
    others = [
        f.injected_at
        for f in all_faults
        if f.name != fault.name and f.injected_at is not None and f.injected_at > fault.injected_at
    ]
    breach_by = min(others) if others and spec.indicator.kind is IndicatorKind.MTTR else None
    return Scope(window=Window(name, fault.injected_at, end), fault=fault, breach_by=breach_by)


def _next_injection(fault: FaultRecord, faults: Sequence[FaultRecord], run_end: float) -> float:
    after = [
        f.injected_at
        for f in faults
        if f.name == fault.name
        and f.injected_at is not None
        and fault.injected_at is not None
        and f.injected_at > fault.injected_at
    ]
    return min([run_end, *after])


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
    scrape_interval_s: float = 1.0,
    breach_by: float | None = None,
) -> Measurement:
    """Measure ``spec`` over ``window`` (for ``fault`` when per fault); raises HarnessError.

    Shares get their error budget and burn rates in ``stats``; time values carry the scrape
    interval as their resolution.
    """
    slice_s = spec.indicator.slice_s or scrape_interval_s
    match spec.indicator.kind:
        case IndicatorKind.THRESHOLD:
            return _threshold(spec, prom, window)
        case IndicatorKind.RATIO:
            ratio = _ratio(spec.indicator.good, spec.indicator.total, prom, window)
            return _budgeted(spec, ratio, prom, window, slice_s)
        case IndicatorKind.PROBE_UPTIME:
            uptime = _probe_uptime(spec.indicator.job, prom, window)
            return _budgeted(spec, uptime, prom, window, slice_s)
        case IndicatorKind.SLICE_UPTIME:
            slices = _slice_uptime(spec.indicator.job, slice_s, prom, window)
            return _budgeted(spec, slices, prom, window, slice_s)
        case IndicatorKind.RECOVERY_TIME:
            measured = _recovery(spec, prom, window, fault, step_s=scrape_interval_s)
            return replace(measured, resolution_s=scrape_interval_s)
        case IndicatorKind.MTTR:
            return measure_mttr(
                spec,
                prom=prom,
                window=window,
                fault=fault,
                step_s=scrape_interval_s,
                breach_by=breach_by,
            )
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


def _slice_query(job: str, slice_s: float) -> str:
    # A slice ending at t holds the probes of (t - slice, t]: the range is 1 ms short because
    # Prometheus 2 ranges include their start, which would count a boundary probe twice.
    return f'min(min_over_time(probe_success{{job="{job}"}}[{_ms(slice_s) - 1}ms]))'


def _ms(seconds: float) -> int:
    return max(2, round(seconds * 1000))


def _slice_uptime(job: str, slice_s: float, prom: PromQuery, window: Window) -> Measurement:
    query = _slice_query(job, slice_s)
    expected = math.floor(window.duration_s / slice_s + 1e-9)
    if expected < 1:
        note = f"the window is shorter than one slice of {slice_s:g} s"
        return Measurement(value=None, query=query, notes=(note,), resolution_s=slice_s)
    points = _range_points(prom, query, start=window.start + slice_s, end=window.end, step=slice_s)
    values = [value for _, value in points if math.isfinite(value)]
    if not values:
        note = f"no probes of job '{job}'"
        return Measurement(value=None, query=query, notes=(note,), resolution_s=slice_s)
    missing = expected - len(values)
    notes = (f"{missing:,} of {expected:,} slices held no probe and are left out",) * (missing > 0)
    good = sum(1 for value in values if value >= 1)
    return Measurement(
        value=good / len(values), samples=len(values), query=query, notes=notes,
        resolution_s=slice_s,
    )  # fmt: skip


def _range_points(
    prom: PromQuery, query: str, *, start: float, end: float, step: float
) -> list[tuple[float, float]]:
    """Return every point of ``query`` over ``[start, end]``, asked in pieces Prometheus allows."""
    points: list[tuple[float, float]] = []
    while start <= end + 1e-6:
        stop = min(end, start + step * (_MAX_POINTS - 1))
        for _, series in prom.range(query, start=start, end=stop, step_s=step):
            points.extend(series)
        start = stop + step
    return points


def _budgeted(
    spec: SloSpec, m: Measurement, prom: PromQuery, window: Window, slice_s: float
) -> Measurement:
    """Add the error budget, the burn rate and (for long windows) the burn-rate pairs."""
    if m.value is None or not math.isfinite(m.value):
        return m
    stats = {**m.stats, **budget_stats(spec.objective, m.value)}
    fits, too_long = pairs_within(window.duration_s)
    notes = m.notes
    if too_long:
        labels = ", ".join(f"{p.label} (needs {duration_label(p.long_s)})" for p in too_long)
        notes += (f"too short for the burn-rate pairs {labels}",)
    budget = stats["error_budget"]
    for pair in fits:
        stats.update(
            _burn_pair(spec, pair, prom=prom, window=window, budget=budget, slice_s=slice_s)
        )
    return replace(m, stats=stats, notes=notes)


def _burn_pair(
    spec: SloSpec, pair: BurnPair, *, prom: PromQuery, window: Window, budget: float, slice_s: float
) -> dict[str, float]:
    """Return the pair's peak burn over the window, alerting as Prometheus would have."""
    if budget <= 0:
        return {}
    step = max(pair.short_s / 10, window.duration_s / (_MAX_POINTS - 1))
    start = window.start + pair.short_s
    short, long = (
        _range_points(prom, _bad_share(spec, span, slice_s), start=start, end=window.end, step=step)
        for span in (pair.short_s, pair.long_s)
    )
    return pair_stats(pair, short, long, budget)


def _bad_share(spec: SloSpec, span_s: float, slice_s: float) -> str:
    """Return PromQL for the share of bad events, probes or slices over the last ``span_s``."""
    span = f"{round(span_s)}s"
    indicator = spec.indicator
    match indicator.kind:
        case IndicatorKind.RATIO:
            good, total = (
                q.replace(WINDOW_PLACEHOLDER, span) for q in (indicator.good, indicator.total)
            )
            return f"1 - ({good}) / ({total})"
        case IndicatorKind.PROBE_UPTIME:
            probes = f'probe_success{{job="{indicator.job}"}}[{span}]'
            return f"1 - sum(sum_over_time({probes})) / sum(count_over_time({probes}))"
        case _:
            slices = f"{_slice_query(indicator.job, slice_s)}[{span}:{_ms(slice_s)}ms]"
            return f"1 - avg_over_time({slices})"


def _recovery(
    spec: SloSpec, prom: PromQuery, window: Window, fault: FaultRecord | None, *, step_s: float
) -> Measurement:
    """The indicator reports the instant of a recovery (a new leader's first reconcile); the
    fault's recovery is the first such instant at or after its injection.

    Read over the window at the scrape interval and take the first step that reports one: the
    latest value at the window's end would be a later recovery, from a later fault.
    """
    query = render(spec.indicator.promql, window)
    if fault is None or fault.injected_at is None:
        name = fault.name if fault else spec.indicator.fault
        return Measurement(value=None, query=query, invalid=f"the fault '{name}' was not applied")
    injected = fault.injected_at
    steps: dict[float, list[float]] = {}
    for _, points in prom.range(query, start=injected, end=window.end, step_s=step_s):
        for at, value in points:
            if math.isfinite(value):
                steps.setdefault(at, []).append(value)
    if not steps:
        return Measurement(value=None, query=query, notes=("the query returned no timestamp",))
    after = [max(values) for _, values in sorted(steps.items()) if max(values) >= injected]
    if not after:
        latest = max(max(values) for values in steps.values())
        failure = (
            f"not recovered: the latest sign of recovery ({_clock(latest)}) is before the "
            f"fault '{fault.name}' injected at {_clock(injected)}, checked until "
            f"{_clock(window.end)}"
        )
        return Measurement(value=None, samples=len(steps), query=query, failure=failure)
    note = f"fault '{fault.name}' injected at {_clock(injected)}"
    return Measurement(value=after[0] - injected, samples=1, query=query, notes=(note,))


def _external(spec: SloSpec, window: Window, external: Mapping[str, float | None]) -> Measurement:
    for key in (f"{spec.name}@{window.name}", spec.name):
        if key in external:
            value = external[key]
            return Measurement(value=value, samples=0 if value is None else 1)
    return Measurement(value=None, notes=("the engine supplied no measurement",))


def _clock(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).isoformat(timespec="milliseconds")
