"""Time to recover per fault injection, from the SLI series, and its spread across injections.

An ``mttr`` indicator is a PromQL expression evaluated every scrape interval (a range query)
from the fault's injection to the run's end or the next injection of the same fault, whichever
comes first. A sample is healthy when it holds ``within`` (say ``>= 1`` for probe success).
The time to recover is from the injection to the first sample of the first run of
``consecutive`` healthy samples *after the indicator first left its healthy range*: samples
taken before the fault shows (Prometheus still answers with the last scrape from before the
fault) are no recovery. An indicator that never leaves its range recovered in 0 s. One that is
not back by the end of its window failed ("not recovered within X s"); no samples at all make
the injection INVALID.

A run of samples is consecutive when each is one step after the last: a missing step (no data)
or a NaN (say 0/0 with no requests) breaks it. With several series, a step is healthy only when
every series with a value there is.

When a fault is injected more than once, :func:`distribution` judges one more result over all
its injections: p50, p95 and max of their recovery times (nearest-rank percentiles: the value
at rank ``ceil(p/100 * n)`` of the sorted times), judged on the SLO's ``statistic``. An
injection that never recovered ranks above every other (its time is unbounded), so it sets the
max but may leave the p50 decided. This aggregate serves ``recovery-time`` SLOs too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from harness.model import FaultRecord, SloResult, Verdict, Window, combine_verdicts
from harness.slo._judge import Measurement
from harness.slo._query import PromQuery, Series
from harness.slo._resolution import unresolved
from harness.slo._spec import Healthy, IndicatorKind, SloSpec, Statistic

# Window names of the results over all injections of a fault start with this.
DISTRIBUTION_PREFIX = "all "
# Prometheus refuses range queries of more than 11,000 points per series.
_CHUNK_STEPS = 10_000
# Two samples are consecutive when at most this many steps apart (range steps are exact).
_ADJACENT_STEPS = 1.5
_DISTRIBUTED = (IndicatorKind.RECOVERY_TIME, IndicatorKind.MTTR)

Point = tuple[float, float]


@dataclass(frozen=True)
class Recovery:
    """What a recovery search found in one series of points.

    ``left_at``: the first unhealthy sample (None: the indicator never left its range).
    ``back_at``: the first sample of the first healthy run after it (None: not back).
    """

    left_at: float | None
    back_at: float | None


def first_recovery(
    points: Sequence[Point], *, within: Healthy, consecutive: int, step_s: float
) -> Recovery:
    """Search ``points`` (time order) for the first return to health after the first breach."""
    left_at: float | None = None
    run_start, run_length, previous = 0.0, 0, -math.inf
    for t, value in points:
        adjacent = t - previous <= _ADJACENT_STEPS * step_s
        previous = t
        if math.isnan(value) or not within.holds(value):
            if not math.isnan(value) and left_at is None:
                left_at = t
            run_length = 0
            continue
        if left_at is None:
            continue
        if run_length == 0 or not adjacent:
            run_start, run_length = t, 0
        run_length += 1
        if run_length >= consecutive:
            return Recovery(left_at=left_at, back_at=run_start)
    return Recovery(left_at=left_at, back_at=None)


def worst_points(series: Sequence[Series], within: Healthy) -> list[Point]:
    """Merge ``series`` into one point per step: an unhealthy value if any series has one."""
    by_time: dict[float, list[float]] = {}
    for _, points in series:
        for t, value in points:
            by_time.setdefault(t, []).append(value)
    return [(t, _worst(values, within)) for t, values in sorted(by_time.items())]


def _worst(values: Sequence[float], within: Healthy) -> float:
    known = [v for v in values if not math.isnan(v)]
    unhealthy = [v for v in known if not within.holds(v)]
    return (unhealthy or known or [math.nan])[0]


@dataclass(frozen=True)
class _Searched:
    """The merged points of a recovery search, what it found and the most series at once."""

    points: list[Point]
    recovery: Recovery
    widest: int

    @property
    def known(self) -> int:
        return sum(1 for _, value in self.points if not math.isnan(value))


def measure_mttr(
    spec: SloSpec,
    *,
    prom: PromQuery,
    window: Window,
    fault: FaultRecord | None,
    step_s: float | None,
    breach_by: float | None = None,
) -> Measurement:
    """Measure one injection's time to recover over ``window``; raises HarnessError.

    An indicator that first left its range only after ``breach_by`` (the next fault of another
    name) did so for that fault: this one recovered in 0 s.
    """
    ind, query = spec.indicator, spec.indicator.promql
    if fault is None or fault.injected_at is None:
        name = fault.name if fault else ind.fault
        return Measurement(value=None, query=query, invalid=f"the fault '{name}' was not applied")
    if step_s is None or step_s <= 0:
        invalid = "the scrape interval is unknown, so there is no step to search for recovery"
        return Measurement(value=None, query=query, invalid=invalid)
    if ind.within is None:
        return Measurement(value=None, query=query, invalid="the indicator has no 'within'")
    searched = _search(prom, spec, window=window, within=ind.within, step_s=step_s)
    left = searched.recovery.left_at
    if breach_by is not None and left is not None and left >= breach_by:
        searched = replace(searched, recovery=Recovery(left_at=None, back_at=None))
    return _measurement(spec, searched, window=window, injected=fault.injected_at, step_s=step_s)


def _search(
    prom: PromQuery, spec: SloSpec, *, window: Window, within: Healthy, step_s: float
) -> _Searched:
    points: list[Point] = []
    found, widest = Recovery(None, None), 0
    for start, end in _chunks(window.start, window.end, step_s):
        series = prom.range(spec.indicator.promql, start=start, end=end, step_s=step_s)
        widest = max(widest, len(series))
        points += worst_points(series, within)
        found = first_recovery(
            points, within=within, consecutive=spec.indicator.consecutive, step_s=step_s
        )
        if found.back_at is not None:
            break
    return _Searched(points=points, recovery=found, widest=widest)


def _chunks(start: float, end: float, step_s: float) -> Iterator[tuple[float, float]]:
    span = step_s * (_CHUNK_STEPS - 1)
    t = start
    while t <= end:
        stop = min(end, t + span)
        yield t, stop
        t = stop + step_s


def _measurement(
    spec: SloSpec, searched: _Searched, *, window: Window, injected: float, step_s: float
) -> Measurement:
    ind, query, found = spec.indicator, spec.indicator.promql, searched.recovery
    if searched.known == 0:
        invalid = (
            f"the query returned no samples from {_clock(window.start)} to {_clock(window.end)}"
        )
        return Measurement(value=None, query=query, invalid=invalid)
    within = f"{ind.within.comparator.symbol} {ind.within.value:g}" if ind.within else ""
    notes = [f"{searched.known} samples at {step_s:g} s steps"]
    if searched.widest > 1:
        notes.append(f"worst of {searched.widest} series")
    if found.left_at is None:
        notes.append(f"the indicator stayed {within} throughout")
        value = 0.0
    elif found.back_at is None:
        failure = (
            f"not recovered within {window.duration_s:.1f} s: the indicator left {within} at "
            f"+{found.left_at - injected:.1f} s and was not back for {ind.consecutive} samples "
            f"in a row by {_clock(window.end)}"
        )
        return Measurement(value=None, samples=searched.known, query=query, failure=failure)
    else:
        value = found.back_at - injected
        notes.append(
            f"left {within} at +{found.left_at - injected:.1f} s, "
            f"back for {ind.consecutive} samples in a row from +{value:.1f} s"
        )
    return Measurement(
        value=value, samples=searched.known, query=query, notes=tuple(notes), resolution_s=step_s
    )


def percentile(values: Sequence[float], p: float) -> float:
    """Return the nearest-rank ``p``-th percentile: the sorted value at rank ceil(p/100 * n)."""
    if not values:
        raise ValueError("a percentile of no values is undefined")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def distribution(
    spec: SloSpec,
    results: Sequence[SloResult],
    *,
    run_window: Window,
    faults: Sequence[FaultRecord],
    resolution_s: float,
) -> SloResult | None:
    """Judge recovery over all injections of the spec's fault; None with fewer than two.

    ``results`` are the spec's per-injection results. A result without a value that FAILed did
    not recover; one without a value that did not FAIL (INVALID, ...) leaves the distribution
    unknown, and the aggregate takes the worst such verdict. A passing figure within
    ``resolution_s`` (the scrape interval) of the objective is INCONCLUSIVE, as per injection.
    """
    if spec.indicator.kind not in _DISTRIBUTED or len(results) < 2:
        return None
    name = spec.indicator.fault
    injected = [f.injected_at for f in faults if f.name == name and f.injected_at is not None]
    start = min(injected, default=run_window.start)
    window = Window(f"{DISTRIBUTION_PREFIX}{name}", start, run_window.end)
    undecided = [r for r in results if r.value is None and r.verdict is not Verdict.FAIL]
    if undecided:
        names = ", ".join(r.window.name for r in undecided)
        finding = (
            f"{len(undecided)} of {len(results)} injections could not be judged ({names}), "
            "so the spread of recovery times is unknown"
        )
        verdict = combine_verdicts(r.verdict for r in undecided)
        stats = {"count": float(len(results))}
        return _aggregate(spec, window, verdict=verdict, value=None, finding=finding, stats=stats)
    durations = [math.inf if r.value is None else r.value for r in results]
    return _judge_spread(spec, durations, window=window, resolution_s=resolution_s)


def _judge_spread(
    spec: SloSpec, durations: Sequence[float], *, window: Window, resolution_s: float
) -> SloResult:
    figures = {s.value: _statistic(durations, s) for s in Statistic}
    value = figures[spec.indicator.statistic.value]
    stats = {"count": float(len(durations))} | {k: v for k, v in figures.items() if v < math.inf}
    shown = ", ".join(f"{k} {_seconds(v)}" for k, v in figures.items())
    finding = f"{shown} over {len(durations)} injections, judged on the {spec.indicator.statistic}"
    lost = sum(1 for d in durations if d == math.inf)
    if lost:
        stats["not_recovered"] = float(lost)
        finding += f"; {lost} not recovered"
    reason = ""
    if value == math.inf or not spec.comparator.holds(value, spec.objective):
        verdict = Verdict.FAIL
    else:
        reason = unresolved(
            spec, value=value, samples=len(durations), resolution_s=resolution_s, window=window
        )
        verdict = Verdict.INCONCLUSIVE if reason else Verdict.PASS
    return _aggregate(
        spec, window, verdict=verdict, value=None if value == math.inf else value,
        finding=f"{finding}, but {reason}" if reason else finding, stats=stats,
    )  # fmt: skip


def _statistic(durations: Sequence[float], statistic: Statistic) -> float:
    match statistic:
        case Statistic.P50:
            return percentile(durations, 50)
        case Statistic.P95:
            return percentile(durations, 95)
        case Statistic.MAX:
            return max(durations)


def _aggregate(
    spec: SloSpec,
    window: Window,
    *,
    verdict: Verdict,
    value: float | None,
    finding: str,
    stats: dict[str, float],
) -> SloResult:
    goal = f"objective {spec.comparator.symbol} {_seconds(spec.objective)}"
    return SloResult(
        name=spec.name,
        verdict=verdict,
        value=value,
        objective=spec.objective,
        comparator=spec.comparator.value,
        window=window,
        severity=spec.severity.value,
        detail=f"{finding}; {goal}",
        query=spec.indicator.promql,
        samples=int(stats["count"]),
        stats=stats,
    )


def is_distribution(result: SloResult) -> bool:
    """Whether ``result`` judges all injections of a fault rather than one window."""
    return result.window.name.startswith(DISTRIBUTION_PREFIX)


def _seconds(value: float) -> str:
    return "not recovered" if value == math.inf else f"{value:.1f} s"


def _clock(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).isoformat(timespec="milliseconds")
