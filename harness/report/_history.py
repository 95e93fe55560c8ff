"""Regression against history: a run compared with the last runs of its profile and target.

The history is the ``reports/<run-id>/run.json`` files of earlier runs with the same profile and
target; INVALID runs decided nothing and are left out, unreadable files are skipped with a
warning. Each figure's baseline is its median over those runs. A figure that worsened by more
than the settings allow comes out as a FAIL result with the settings' severity (``gate`` fails
the run, ``warn`` is reported only); with fewer than ``min_runs`` comparable runs nothing is
compared and one SKIPPED result says so, never PASS.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from harness.config._settings import RegressionSettings
from harness.model import RunRecord, SloResult, Verdict, Window
from harness.report._format import seconds, slo_value
from harness.report._runjson import load_run_record
from harness.report._table import _grid
from harness.util.errors import ConfigError

log = logging.getLogger(__name__)

# Every result of the comparison is named ``regression:...``, so reports and the trend table
# can tell them from the SLOs the run was judged by.
PREFIX = "regression"
ABSOLUTE_RISE, RELATIVE_RISE, RELATIVE_DROP = "absolute rise", "rise", "drop"


@dataclass(frozen=True)
class Figure:
    """One figure of a run that can worsen, the way it worsens and how people read it."""

    name: str
    window: Window
    value: float
    worse: str
    show: Callable[[float], str]

    @property
    def shown(self) -> str:
        return self.show(self.value)


def compare_with_history(
    record: RunRecord, reports_dir: Path, settings: RegressionSettings
) -> tuple[SloResult, ...]:
    """Return one result per figure of ``record`` compared with its baseline from history."""
    run_window = Window("run", record.started_at, record.ended_at)
    if record.verdict is Verdict.INVALID:
        return (_skipped(run_window, settings, "the run is INVALID; not compared with history"),)
    runs = earlier_runs(record, reports_dir)[-settings.history :]
    if len(runs) < settings.min_runs:
        return (_too_few(record, runs, reports_dir, settings, run_window),)
    past = [{(f.name, f.window.name): f for f in figures(run)} for run in runs]
    return tuple(_compare(fig, past, runs, settings) for fig in figures(record))


def earlier_runs(record: RunRecord, reports_dir: Path) -> list[RunRecord]:
    """Return the readable, valid runs of ``record``'s profile and target that started
    before it, oldest first."""
    runs = [
        run
        for run in read_runs(reports_dir)
        if run.profile == record.profile
        and run.target == record.target
        and run.run_id != record.run_id
        and run.started_at < record.started_at
        and run.verdict is not Verdict.INVALID
    ]
    return sorted(runs, key=lambda run: run.started_at)


def read_runs(reports_dir: Path) -> Iterator[RunRecord]:
    """Yield every ``<run-id>/run.json`` under ``reports_dir`` that reads; warn about the rest."""
    for path in sorted(reports_dir.glob("*/run.json")):
        try:
            yield load_run_record(path)
        except ConfigError as exc:
            log.warning("history: skipping a run.json that does not read: %s", exc)


def figures(run: RunRecord) -> list[Figure]:
    """Return the figures of ``run`` compared with history: load p99 (whole run and each
    phase), the failed share of requests, each fault's recovery (the slowest of its
    injections) and each numeric SLO value."""
    whole = Window("run", run.started_at, run.ended_at)
    return [*_load_figures(run, whole), *_recovery_figures(run), *_slo_figures(run)]


def _load_figures(run: RunRecord, whole: Window) -> Iterator[Figure]:
    if run.load is None:
        return
    phases = {phase.name: Window(phase.name, phase.start, phase.end) for phase in run.phases}
    loads = [("load-p99", whole, run.load)]
    loads += [
        (f"load-p99:{name}", phases.get(name, Window(name, run.started_at, run.ended_at)), load)
        for name, load in run.load.by_phase.items()
    ]
    for name, window, load in loads:
        if load.p99_ms is not None:
            yield Figure(name, window, load.p99_ms, RELATIVE_RISE, _milliseconds)
    if run.load.requests:
        share = run.load.failures / run.load.requests
        yield Figure("failure-share", whole, share, ABSOLUTE_RISE, _percent)


def _recovery_figures(run: RunRecord) -> Iterable[Figure]:
    slowest: dict[str, Figure] = {}
    for fault in run.faults:
        if fault.injected_at is None or fault.recovered_at is None:
            continue
        window = Window(fault.name, fault.injected_at, fault.recovered_at)
        recovery = fault.recovered_at - fault.injected_at
        if fault.name not in slowest or recovery > slowest[fault.name].value:
            slowest[fault.name] = Figure(
                f"recovery:{fault.name}", window, recovery, RELATIVE_RISE, seconds
            )
    return slowest.values()


def _slo_figures(run: RunRecord) -> Iterator[Figure]:
    for result in run.slos:
        worse = _slo_worse(result)
        if worse and result.value is not None and not result.name.startswith(PREFIX):
            show = partial(slo_value, result)
            yield Figure(f"slo:{result.name}", result.window, result.value, worse, show)


def _slo_worse(result: SloResult) -> str:
    """Which way the SLO's value worsens: a bound from above rises, one from below drops."""
    return {"<=": RELATIVE_RISE, "<": RELATIVE_RISE, ">=": RELATIVE_DROP, ">": RELATIVE_DROP}.get(
        result.comparator, ""
    )


def _compare(
    figure: Figure,
    past: list[dict[tuple[str, str], Figure]],
    runs: list[RunRecord],
    settings: RegressionSettings,
) -> SloResult:
    key = (figure.name, figure.window.name)
    pairs = [
        (run.run_id, seen[key].value) for run, seen in zip(runs, past, strict=True) if key in seen
    ]
    ids = ", ".join(run_id for run_id, _ in pairs)
    name = f"{PREFIX}:{figure.name}"
    if len(pairs) < settings.min_runs:
        detail = (
            f"not compared: {figure.name} is in {len(pairs)} of the {len(runs)} runs of the "
            f"history, {settings.min_runs} needed; runs: {ids or 'none'}"
        )
        return _result(name, figure, settings, Verdict.SKIPPED, detail, limit=0.0, runs=len(pairs))
    baseline = statistics.median(value for _, value in pairs)
    limit, allowed = _limit(figure.worse, baseline, settings, figure.name)
    worse = figure.value < limit if figure.worse == RELATIVE_DROP else figure.value > limit
    change = _change(figure.value, baseline, absolute=figure.worse == ABSOLUTE_RISE)
    detail = (
        f"{figure.shown} against a baseline of {figure.show(baseline)} ({change}; allowed "
        f"{allowed}): the median {figure.name} of {len(pairs)} runs: {ids}"
    )
    verdict = Verdict.FAIL if worse else Verdict.PASS
    result = _result(name, figure, settings, verdict, detail, limit=limit, runs=len(pairs))
    stats = {"baseline": baseline, "limit": limit}
    if baseline:
        stats["change_pct"] = 100 * (figure.value - baseline) / baseline
    if figure.worse == ABSOLUTE_RISE:
        stats["change"] = figure.value - baseline
    return replace(result, stats=stats)


def _limit(
    worse: str, baseline: float, settings: RegressionSettings, name: str
) -> tuple[float, str]:
    """Return the worst value still allowed, and the allowance as people read it."""
    if worse == ABSOLUTE_RISE:
        return (
            baseline + settings.failure_increase,
            f"+{settings.failure_increase * 100:.2f} points",
        )
    if name.startswith("load-p99"):
        share = settings.p99_increase
    elif name.startswith("recovery:"):
        share = settings.recovery_increase
    else:
        share = settings.slo_change
    if worse == RELATIVE_DROP:
        return baseline * (1 - share), f"-{share * 100:g} %"
    return baseline * (1 + share), f"+{share * 100:g} %"


def _change(value: float, baseline: float, *, absolute: bool) -> str:
    points = f"{(value - baseline) * 100:+.2f} points" if absolute else ""
    if not baseline:
        return points or ("no change" if value == baseline else "up from zero")
    relative = f"{100 * (value - baseline) / baseline:+.1f} %"
    return f"{points} ({relative})" if points else relative


def _percent(share: float) -> str:
    return f"{share * 100:.2f} %"


def _milliseconds(value: float) -> str:
    return f"{value:.4g} ms"


def _result(
    name: str,
    figure: Figure,
    settings: RegressionSettings,
    verdict: Verdict,
    detail: str,
    *,
    limit: float,
    runs: int,
) -> SloResult:
    return SloResult(
        name=name,
        verdict=verdict,
        value=figure.value,
        objective=limit,
        comparator=">=" if figure.worse == RELATIVE_DROP else "<=",
        window=figure.window,
        severity=settings.severity,
        detail=detail,
        samples=runs,
    )


def _skipped(window: Window, settings: RegressionSettings, detail: str) -> SloResult:
    return SloResult(
        name=PREFIX,
        verdict=Verdict.SKIPPED,
        value=None,
        objective=float(settings.min_runs),
        comparator=">=",
        window=window,
        severity=settings.severity,
        detail=detail,
    )


def _too_few(
    record: RunRecord,
    runs: list[RunRecord],
    reports_dir: Path,
    settings: RegressionSettings,
    window: Window,
) -> SloResult:
    ids = ", ".join(run.run_id for run in runs) or "none"
    detail = (
        f"{len(runs)} earlier runs of profile {record.profile} on target {record.target} in "
        f"{reports_dir} ({ids}), {settings.min_runs} needed (INVALID runs do not count); "
        "nothing compared"
    )
    if settings.history < settings.min_runs:
        detail += (
            f"; regression.history ({settings.history}) is below regression.min_runs "
            f"({settings.min_runs}): raise it"
        )
    result = _skipped(window, settings, detail)
    return replace(result, value=float(len(runs)), samples=len(runs))


def history_table(reports_dir: Path, *, profile: str | None, last: int) -> str:
    """Return the trend of the last ``last`` runs of ``profile`` (default: the newest run's):
    one row per run with its verdict, load p99, failures, each fault's recovery and each
    gating SLO's value. Raise ConfigError when there is no such run."""
    if last < 1:
        raise ConfigError(f"--last is {last}; pass 1 or more.")
    runs = sorted(read_runs(reports_dir), key=lambda run: run.started_at)
    if not runs:
        raise ConfigError(
            f"{reports_dir}: no run.json in any run directory; run `harness certify` first "
            "or pass --reports-dir with the directory your runs went to."
        )
    chosen = profile or runs[-1].profile
    mine = [run for run in runs if run.profile == chosen]
    if not mine:
        profiles = ", ".join(sorted({run.profile for run in runs}))
        raise ConfigError(
            f"{reports_dir}: no run of profile {chosen}; the runs there are of {profiles}: "
            "pass one of them with --profile."
        )
    shown = mine[-last:]
    header = f"profile {chosen}: the last {len(shown)} of {len(mine)} runs in {reports_dir}"
    legend = (
        "after FAILURES: each fault's recovery (its slowest injection), each gating SLO's value"
    )
    return "\n".join([header, legend, "", *_trend(shown)]) + "\n"


def _trend(runs: list[RunRecord]) -> list[str]:
    faults = list(dict.fromkeys(fault.name for run in runs for fault in run.faults))
    slos = list(
        dict.fromkeys(
            result.name
            for run in runs
            for result in run.slos
            if result.severity == "gate" and not result.name.startswith(PREFIX)
        )
    )
    head = ["RUN", "TARGET", "VERDICT", "P99", "FAILURES", *faults, *slos]
    return _grid(head, [_row(run, faults, slos) for run in runs])


def _row(run: RunRecord, faults: list[str], slos: list[str]) -> list[str]:
    load = run.load
    p99 = "—" if load is None or load.p99_ms is None else f"{load.p99_ms:.0f} ms"
    failures = "—"
    if load is not None:
        share = load.failures / load.requests if load.requests else 0.0
        failures = f"{load.failures} ({_percent(share)})"
    cells = [run.run_id, run.target, str(run.verdict), p99, failures]
    for name in faults:
        times = [f.recovery_s for f in run.faults if f.name == name]
        known = [t for t in times if t is not None]
        cells.append("—" if not times else "none" if not known else seconds(max(known)))
    for name in slos:
        results = [r for r in run.slos if r.name == name and r.severity == "gate"]
        cells.append(" ".join(slo_value(r, r.value) for r in results) or "—")
    return cells
