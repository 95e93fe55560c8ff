"""Judging a measured SLO: a pure function from spec, measurement and window to a result."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.model import SloResult, Verdict, Window
from harness.slo._budget import describe_budget
from harness.slo._resolution import is_duration, unresolved
from harness.slo._spec import IndicatorKind, SloSpec

# Kinds whose value rests on counted samples: without any, there is nothing to judge.
_COUNTED = {
    IndicatorKind.PROBE_UPTIME: "probes",
    IndicatorKind.SLICE_UPTIME: "time slices",
    IndicatorKind.RATIO: "events",
}


@dataclass(frozen=True)
class Measurement:
    """What was measured for one SLO over one window.

    ``value`` is None when there was no data. ``invalid`` says why the run cannot be judged at
    all (the fault was not applied); ``failure`` says why it failed whatever the value (the
    system never recovered). ``samples`` counts what the value rests on (probes, slices,
    requests). ``resolution_s`` is the time one sample stands for (the scrape interval of a
    recovery time, the slice of a slice uptime); 0 when it does not apply. ``stats`` holds
    further named figures (error budget, burn rates).
    """

    value: float | None
    samples: int = 0
    query: str = ""
    notes: tuple[str, ...] = ()
    invalid: str = ""
    failure: str = ""
    stats: Mapping[str, float] = field(default_factory=dict)
    resolution_s: float = 0.0


def judge(spec: SloSpec, measurement: Measurement, window: Window) -> SloResult:
    """Return the verdict of ``spec`` for ``measurement`` over ``window``.

    No data is never PASS (INVALID), an observed breach is FAIL, and a passing value that the
    samples cannot resolve (too few probes, too coarse a scrape) is INCONCLUSIVE with the reason.
    """
    verdict, finding = _decide(spec, measurement, window)
    notes = f" ({'; '.join(measurement.notes)})" if measurement.notes else ""
    budget = describe_budget(measurement.stats)
    goal = f"objective {spec.comparator.symbol} {format_value(spec, spec.objective)}"
    detail = f"{finding}{notes}; {f'{budget}; ' if budget else ''}{goal}"
    return SloResult(
        name=spec.name,
        verdict=verdict,
        value=measurement.value,
        objective=spec.objective,
        comparator=spec.comparator.value,
        window=window,
        severity=spec.severity.value,
        detail=detail,
        query=measurement.query,
        samples=measurement.samples,
        stats=dict(measurement.stats),
        unit=unit_of(spec),
    )


def _decide(spec: SloSpec, m: Measurement, window: Window) -> tuple[Verdict, str]:
    if m.invalid:
        return Verdict.INVALID, m.invalid
    if m.failure:
        return Verdict.FAIL, m.failure
    if m.value is None or math.isnan(m.value):
        return Verdict.INVALID, "no data, and no data is never PASS"
    counted = _COUNTED.get(spec.indicator.kind)
    if counted and m.samples == 0:
        return Verdict.INVALID, f"no {counted} were recorded, and no data is never PASS"
    finding = _describe(spec, m.value, m.samples)
    if not spec.comparator.holds(m.value, spec.objective):
        return Verdict.FAIL, finding
    reason = unresolved(
        spec, value=m.value, samples=m.samples, resolution_s=m.resolution_s, window=window
    )
    if reason:
        return Verdict.INCONCLUSIVE, f"{finding}, but {reason}"
    return Verdict.PASS, finding


def _describe(spec: SloSpec, value: float, samples: int) -> str:
    shown = format_value(spec, value)
    match spec.indicator.kind:
        case IndicatorKind.PROBE_UPTIME:
            good = round(value * samples)
            return f"{good:,} of {samples:,} probes succeeded ({shown})"
        case IndicatorKind.SLICE_UPTIME:
            good = round(value * samples)
            return f"{good:,} of {samples:,} time slices had every probe succeed ({shown})"
        case IndicatorKind.RATIO:
            return f"{shown} good over {samples:,} events"
        case IndicatorKind.RECOVERY_TIME | IndicatorKind.MTTR:
            return f"recovered in {shown}"
        case IndicatorKind.SESSIONS_PRESERVED:
            return f"{shown} of sessions preserved"
        case _:
            return f"measured {shown}"


def unit_of(spec: SloSpec) -> str:
    """``share`` for shares, ``s`` for durations (recovery; a query in seconds), else ``""``."""
    kind = spec.indicator.kind
    if kind.is_share:
        return "share"
    if is_duration(kind) or "seconds" in spec.indicator.promql:
        return "s"
    return ""


def format_value(spec: SloSpec, value: float) -> str:
    """Return ``value`` as people read it for this kind: shares as %, durations in seconds."""
    kind = spec.indicator.kind
    if kind.is_share:
        return f"{value * 100:.3f} %"
    if is_duration(kind):
        return f"{value:.1f} s"
    if "seconds" in spec.indicator.promql:
        return f"{value:.3g} s"
    return f"{value:.4g}"
