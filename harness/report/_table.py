"""The plain-text verdict table printed at the end of a run."""

from __future__ import annotations

from collections.abc import Sequence

from harness.model import LoadSummary, RunRecord
from harness.report._format import objective, seconds, slo_value, truncate

DETAIL_WIDTH = 60


def render_table(run: RunRecord) -> str:
    """Return the run's SLOs, faults, load and errors as text, ending with the verdict line."""
    parts = [f"run {run.run_id}  profile {run.profile}  target {run.target}", ""]
    parts += [*_slos(run), "", *_faults(run), "", *_load(run.load)]
    if run.regressions:
        parts += ["", *_slos(run, regressions=True)]
    if run.errors:
        parts += ["", "errors:", *(f"  - {error}" for error in run.errors)]
    parts += ["", f"VERDICT: {run.verdict} (exit {int(run.exit_code)})"]
    return "\n".join(parts) + "\n"


def _slos(run: RunRecord, *, regressions: bool = False) -> list[str]:
    results = run.regressions if regressions else run.slos
    if not results:
        return ["no SLO was judged"]
    rows = [
        [
            result.name,
            result.window.name,
            slo_value(result, result.value),
            objective(result),
            str(result.verdict),
            truncate(result.detail, DETAIL_WIDTH),
        ]
        for result in results
    ]
    first = "AGAINST HISTORY" if regressions else "SLO"
    return _grid([first, "WINDOW", "VALUE", "OBJECTIVE", "VERDICT", "DETAIL"], rows)


def _faults(run: RunRecord) -> list[str]:
    if not run.faults:
        return ["no fault was injected"]
    rows = [
        [
            fault.name,
            "not applied" if fault.injected_at is None else "applied",
            "—" if fault.recovery_s is None else seconds(fault.recovery_s),
            str(fault.status),
            truncate(fault.detail, DETAIL_WIDTH),
        ]
        for fault in run.faults
    ]
    return _grid(["FAULT", "INJECTED", "RECOVERY", "STATUS", "DETAIL"], rows)


def _load(load: LoadSummary | None) -> list[str]:
    if load is None:
        return ["load: none recorded"]
    lines = [f"load: {_load_text(load)}"]
    width = max((len(name) for name in load.by_phase), default=0)
    lines += [f"  {name:<{width}}  {_load_text(p)}" for name, p in load.by_phase.items()]
    return lines


def _load_text(load: LoadSummary) -> str:
    share = 100 * load.failures / load.requests if load.requests else 0.0
    text = f"{load.requests} requests, {load.failures} failures ({share:.2f} %)"
    if load.p50_ms is not None and load.p99_ms is not None:
        text += f", p50 {load.p50_ms:.0f} ms, p99 {load.p99_ms:.0f} ms"
    if load.rps is not None:
        text += f", {load.rps:.1f} req/s"
    return text


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
