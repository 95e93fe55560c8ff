"""Judging a measured SLO: a pure function from spec, measurement and window to a result."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.model import SloResult, Verdict, Window
from harness.slo._spec import IndicatorKind, SloSpec


@dataclass(frozen=True)
class Measurement:
    """What was measured for one SLO over one window.

    ``value`` is None when there was no data. ``invalid`` says why the run cannot be judged at
    all (the fault was not applied); ``failure`` says why it failed whatever the value (the
    system never recovered). ``samples`` counts what the value rests on (probes, requests).
    """

    value: float | None
    samples: int = 0
    query: str = ""
    notes: tuple[str, ...] = ()
    invalid: str = ""
    failure: str = ""


def judge(spec: SloSpec, measurement: Measurement, window: Window) -> SloResult:
    """Return the verdict of ``spec`` for ``measurement``: no data is never PASS."""
    verdict, finding = _decide(spec, measurement)
    notes = f" ({'; '.join(measurement.notes)})" if measurement.notes else ""
    goal = f"objective {spec.comparator.symbol} {format_value(spec, spec.objective)}"
    detail = f"{finding}{notes}; {goal}"
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
    )


def _decide(spec: SloSpec, m: Measurement) -> tuple[Verdict, str]:
    if m.invalid:
        return Verdict.INVALID, m.invalid
    if m.failure:
        return Verdict.FAIL, m.failure
    if m.value is None or math.isnan(m.value):
        return Verdict.INVALID, "no data, and no data is never PASS"
    if spec.indicator.kind is IndicatorKind.PROBE_UPTIME and m.samples == 0:
        return Verdict.INVALID, "no probes were recorded, and no data is never PASS"
    verdict = Verdict.PASS if spec.comparator.holds(m.value, spec.objective) else Verdict.FAIL
    return verdict, _describe(spec, m.value, m.samples)


def _describe(spec: SloSpec, value: float, samples: int) -> str:
    shown = format_value(spec, value)
    match spec.indicator.kind:
        case IndicatorKind.PROBE_UPTIME:
            good = round(value * samples)
            return f"{good} of {samples} probes succeeded ({shown})"
        case IndicatorKind.RATIO:
            return f"{shown} good over {samples} events"
        case IndicatorKind.RECOVERY_TIME:
            return f"recovered in {shown}"
        case IndicatorKind.SESSIONS_PRESERVED:
            return f"{shown} of sessions preserved"
        case _:
            return f"measured {shown}"


def format_value(spec: SloSpec, value: float) -> str:
    """Return ``value`` as people read it for this kind: shares as %, durations in seconds."""
    kind = spec.indicator.kind
    if kind.is_share:
        return f"{value * 100:.3f} %"
    if kind is IndicatorKind.RECOVERY_TIME:
        return f"{value:.1f} s"
    if "seconds" in spec.indicator.promql:
        return f"{value:.3g} s"
    return f"{value:.4g}"
