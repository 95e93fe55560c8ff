"""The run's pictures as PNG data URLs: the fault timeline and one plot per ``series.json`` panel.

Figures are built as ``matplotlib.figure.Figure`` objects on an explicit Agg canvas, never
through pyplot, so no backend is switched, no figure registry fills up and no style leaks into
the rest of the process. Every x axis is seconds since the run started.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NotRequired, TypedDict, cast

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness.model import FaultRecord, RunRecord
from harness.util.errors import ConfigError

WIDTH_IN = 10.0
DPI = 100
PHASE_COLOURS = ("#8da0cb", "#66c2a5", "#a6d854", "#ffd92f", "#e5c494", "#b3b3b3")
FAULT_PHASE_COLOUR = "#fc8d62"
FAULT_SHADE = "#d62728"
RECOVERED = "#2ca02c"
OBJECTIVE_SLO = "api-availability"


class SeriesLineJson(TypedDict):
    label: str
    query: str
    points: list[list[float]]
    error: NotRequired[str]


class PanelJson(TypedDict):
    name: str
    title: str
    unit: str
    series: list[SeriesLineJson]


class SeriesJson(TypedDict):
    window: dict[str, float]
    step_s: float
    panels: list[PanelJson]


def read_series(path: Path) -> SeriesJson:
    """Read a ``series.json``; raise ConfigError when it cannot be read as one."""
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: cannot read it as JSON ({exc}); the plots are left out."
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("panels"), list):
        raise ConfigError(f"{path}: has no list of panels; it is not a series.json.")
    return cast("SeriesJson", data)


def fault_span(run: RunRecord, fault: FaultRecord) -> tuple[float, float, bool] | None:
    """Return ``(start, end, recovered)`` of an applied fault; None when it was never applied.

    An unrecovered fault lasts to the end of the experiment's phase it was injected in
    (``fault:<experiment stem>``, ``fault:<stem>#2``, ...), or to the end of the run.
    """
    if fault.injected_at is None:
        return None
    if fault.recovered_at is not None:
        return fault.injected_at, fault.recovered_at, True
    injected = fault.injected_at
    ends = [
        phase.end
        for phase in run.phases
        if phase.name.startswith("fault:") and phase.start <= injected <= phase.end
    ]
    end = ends[0] if ends else run.ended_at
    return fault.injected_at, max(fault.injected_at, end), False


def timeline_png(run: RunRecord) -> str | None:
    """Return the phases and faults as a Gantt chart; None when the run has neither."""
    faults = [(fault.name, span) for fault in run.faults if (span := fault_span(run, fault))]
    rows = [phase.name for phase in run.phases] + [name for name, _ in faults]
    if not rows:
        return None
    fig, ax = _figure(height_in=0.9 + 0.32 * len(rows))
    t0 = run.started_at
    for y, phase in enumerate(run.phases):
        colour = _phase_colour(phase.name, y)
        ax.broken_barh([(phase.start - t0, phase.end - phase.start)], (y - 0.4, 0.8), color=colour)
    for y, (_, (start, end, recovered)) in enumerate(faults, start=len(run.phases)):
        colour = RECOVERED if recovered else FAULT_SHADE
        ax.broken_barh([(start - t0, end - start)], (y - 0.25, 0.5), color=colour, alpha=0.35)
        ax.plot([start - t0], [y], marker="v", color=FAULT_SHADE, markersize=8)
        text = f" recovered in {end - start:.1f} s" if recovered else " not recovered"
        ax.annotate(_plain(text), (end - t0, y), va="center", fontsize=8, color=colour)
    ax.set_yticks(range(len(rows)), [_plain(row) for row in rows], fontsize=8)
    ax.invert_yaxis()
    _finish_x(ax, run)
    return _data_url(fig)


def panel_png(panel: PanelJson, run: RunRecord) -> str:
    """Return one panel's series over the run with fault windows, phases and the objective."""
    fig, ax = _figure(height_in=2.8)
    scale, unit = (1000.0, "ms") if panel["unit"] == "seconds" else (1.0, panel["unit"])
    drawn, integral = _draw_series(ax, panel["series"], run.started_at, scale)
    _shade_faults(ax, run)
    _phase_lines(ax, run)
    if panel["name"] == OBJECTIVE_SLO:
        _objective_line(ax, run)
    if panel["unit"] == "ratio":
        ax.set_ylim(-0.05, 1.05)
    elif drawn and integral:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if not drawn:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", color="#888888")
    ax.set_ylabel(_plain(unit))
    _finish_x(ax, run)
    handles = ax.get_legend_handles_labels()[0]
    if handles:
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=min(len(handles), 6),
                  fontsize=8, frameon=False, borderaxespad=0.2)  # fmt: skip
    return _data_url(fig)


def _draw_series(
    ax: Axes, lines: Sequence[SeriesLineJson], t0: float, scale: float
) -> tuple[int, bool]:
    """Plot each line with points; return how many were drawn and whether all were integers."""
    drawn, integral = 0, True
    for line in lines:
        points = line.get("points") or []
        if not points:
            continue
        xs = [float(t) - t0 for t, _ in points]
        ys = [float(v) * scale for _, v in points]
        ax.plot(xs, ys, linewidth=1.4, label=_plain(line.get("label", "")))
        drawn += 1
        integral = integral and all(y == int(y) for y in ys if math.isfinite(y))
    return drawn, integral


def _shade_faults(ax: Axes, run: RunRecord) -> None:
    labelled: set[bool] = set()
    for fault in run.faults:
        span = fault_span(run, fault)
        if span is None:
            continue
        start, end, recovered = span
        label = "fault window" if recovered else "fault window (not recovered)"
        ax.axvspan(start - run.started_at, end - run.started_at, color=FAULT_SHADE,
                   alpha=0.12 if recovered else 0.2, hatch=None if recovered else "//",
                   label="_nolegend_" if recovered in labelled else label, linewidth=0)  # fmt: skip
        labelled.add(recovered)


def _phase_lines(ax: Axes, run: RunRecord) -> None:
    for phase in run.phases[1:]:
        ax.axvline(phase.start - run.started_at, color="#999999", linewidth=0.6, linestyle=":")


def _objective_line(ax: Axes, run: RunRecord) -> None:
    for result in run.slos:
        if result.name == OBJECTIVE_SLO:
            ax.axhline(result.objective, color="#444444", linewidth=1.0, linestyle="--",
                       label=_plain(f"objective {result.objective:g}"))  # fmt: skip
            return


def _finish_x(ax: Axes, run: RunRecord) -> None:
    ax.set_xlim(0, max(run.ended_at - run.started_at, 1.0))
    ax.set_xlabel("seconds since run start", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(axis="x", color="#eeeeee", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _phase_colour(name: str, index: int) -> str:
    if name.startswith("fault:"):
        return FAULT_PHASE_COLOUR
    return PHASE_COLOURS[index % len(PHASE_COLOURS)]


def _plain(text: str) -> str:
    """Return ``text`` with ``$`` escaped, so matplotlib never reads it as mathtext."""
    return text.replace("$", r"\$")


def _figure(*, height_in: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _data_url(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    fig.clear()
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
