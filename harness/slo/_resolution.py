"""Whether the samples behind a passing value can resolve the objective: pure, no I/O.

A share objective over a window leaves an error budget in time of ``(1 - objective) x window``
(99.9 % over 35 s is 35 ms). A probe, a slice or an event stands for ``1/n`` of the window; when
that is more than the budget, a single bad one would already spend it, so an all-good result
says nothing about the objective: the verdict is INCONCLUSIVE, never PASS. Time objectives
(recovery within 30 s) cannot be resolved finer than the scrape interval.

Only passing values are questioned: an observed breach is a breach whatever the resolution.
"""

from __future__ import annotations

import math
import re

from harness.model import Window
from harness.slo._spec import Comparator, IndicatorKind, SloSpec

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def unresolved(
    spec: SloSpec, *, value: float, samples: int, resolution_s: float, window: Window
) -> str:
    """Return why ``samples`` cannot resolve ``spec`` for a passing ``value``, or ""."""
    kind = spec.indicator.kind
    if kind.is_share and spec.comparator in (Comparator.GE, Comparator.GT):
        match kind:
            case IndicatorKind.PROBE_UPTIME:
                return _share(spec.objective, samples, window, "probes", "probe more often")
            case IndicatorKind.SLICE_UPTIME:
                return _share(spec.objective, samples, window, "slices", "use shorter slices")
            case IndicatorKind.RATIO:
                return _events(spec.objective, samples)
    if is_duration(kind) and resolution_s > 0:
        return _time(spec, value, resolution_s)
    return ""


def is_duration(kind: IndicatorKind) -> bool:
    """Whether values of ``kind`` are durations measured from scraped samples."""
    return kind in (IndicatorKind.RECOVERY_TIME, IndicatorKind.MTTR)


def needed_samples(objective: float) -> float:
    """Return how many equal samples it takes for one to fit in the budget: ``1/(1-obj)``."""
    budget = 1.0 - objective
    if budget <= 0:
        return math.inf
    return math.ceil(1.0 / budget - 1e-9)


def _share(objective: float, samples: int, window: Window, what: str, remedy: str) -> str:
    need = needed_samples(objective)
    if samples >= need:
        return ""
    if math.isinf(need):
        return (
            f"an objective of 100 % leaves no error budget, which no number of {what} can "
            "resolve; set an objective below 1"
        )
    duration = window.duration_s
    each = duration / samples if samples else math.inf
    budget_s = (1.0 - objective) * duration
    return (
        f"{samples:,} {what} over {seconds_text(duration)} (one per {seconds_text(each)}) "
        f"cannot resolve an error budget of {seconds_text(budget_s)} "
        f"({(1.0 - objective) * 100:.3f} % of {seconds_text(duration)}); "
        f"need >= {need:,} {what}: {remedy} or lengthen the window"
    )


def _events(objective: float, samples: int) -> str:
    need = needed_samples(objective)
    if samples >= need:
        return ""
    if math.isinf(need):
        return (
            "an objective of 100 % leaves no error budget, which no number of events can "
            "resolve; set an objective below 1"
        )
    return (
        f"{samples:,} events cannot resolve an error budget of {(1.0 - objective) * 100:.3f} % "
        f"(one bad event in {need:,}); need >= {need:,} events: send more load or lengthen "
        "the window"
    )


def _time(spec: SloSpec, value: float, scrape_s: float) -> str:
    objective, every = spec.objective, seconds_text(scrape_s)
    if objective < 2 * scrape_s:
        return (
            f"a scrape interval of {every} cannot resolve an objective of "
            f"{seconds_text(objective)}; scrape at least every {seconds_text(objective / 2)}"
        )
    if abs(objective - value) < scrape_s:
        return (
            f"{seconds_text(value)} is within one scrape interval ({every}) of the objective, "
            "so the true value may lie on either side; scrape more often"
        )
    return ""


def seconds_text(seconds: float) -> str:
    """Return a duration as people read it: ``921 ms``, ``35.0 s``, ``2.5 min``, ``1.5 h``."""
    if math.isinf(seconds):
        return "∞"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def parse_duration(text: object) -> float | None:
    """Return a duration (``15s``, ``1m30s``, ``500ms``, or a number of seconds) in seconds.

    None when ``text`` is not one, or is shorter than a millisecond.
    """
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        seconds = float(text)
    elif isinstance(text, str):
        parts = _DURATION.findall(text.strip())
        if not parts or "".join(n + u for n, u in parts) != text.strip():
            return None
        seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    else:
        return None
    return seconds if seconds >= 0.001 else None
