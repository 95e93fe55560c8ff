"""Error budgets and burn rates of share SLOs: pure arithmetic, no I/O.

The error budget of an objective is the share it allows to be bad, ``1 - objective``. The burn
rate of a window is its bad share divided by the budget: 1.0 spends the budget exactly over the
window, 14.4 spends a 30-day budget in two days. Judged over its own window, the share of the
budget consumed and the burn rate are the same number; both are kept, as reports expect both.

Long runs also get the multi-window burn-rate alerts of the Google SRE workbook (chapter
"Alerting on SLOs"): a pair alerts when the burn over its short window and the burn over its
long window are both above the pair's threshold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

# A point of a range query: (POSIX time, value).
Point = tuple[float, float]


@dataclass(frozen=True)
class BurnPair:
    """A multi-window burn-rate alert: fires when both windows burn faster than ``threshold``."""

    short_s: float
    long_s: float
    threshold: float

    @property
    def label(self) -> str:
        """The pair as people write it: ``5m/1h``."""
        return f"{duration_label(self.short_s)}/{duration_label(self.long_s)}"

    @property
    def key(self) -> str:
        """The stem of the pair's stats: ``burn_5m_1h``."""
        return f"burn_{duration_label(self.short_s)}_{duration_label(self.long_s)}"


# 2 % of a 30-day budget in 1 h, and 5 % in 6 h (SRE workbook, table 5-8).
BURN_PAIRS = (BurnPair(300.0, 3600.0, 14.4), BurnPair(1800.0, 21600.0, 6.0))


def duration_label(seconds: float) -> str:
    """Return a whole duration in the largest unit that divides it: ``5m``, ``1h``, ``90s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def error_budget(objective: float) -> float:
    """Return the share an objective allows to be bad (never below 0)."""
    return max(0.0, 1.0 - objective)


def burn_rate(bad_share: float, budget: float) -> float | None:
    """Return ``bad_share / budget``; None when there is no budget to burn."""
    if budget <= 0 or not math.isfinite(bad_share):
        return None
    return max(0.0, bad_share) / budget


def budget_stats(objective: float, value: float) -> dict[str, float]:
    """Return ``error_budget``, ``budget_consumed`` and ``burn_rate`` of a measured share."""
    budget = error_budget(objective)
    stats = {"error_budget": budget}
    rate = burn_rate(1.0 - value, budget)
    if rate is not None:
        stats["budget_consumed"] = rate
        stats["burn_rate"] = rate
    return stats


def peak_of_min(short: Iterable[Point], long: Iterable[Point]) -> float | None:
    """Return the largest ``min(short(t), long(t))`` over the instants both series have.

    Non-finite points (a window with no events gives NaN) are left out; None when no instant
    is left.
    """
    long_at = {round(t, 3): v for t, v in long if math.isfinite(v)}
    both = [
        min(v, long_at[round(t, 3)])
        for t, v in short
        if math.isfinite(v) and round(t, 3) in long_at
    ]
    return max(both) if both else None


def pair_stats(
    pair: BurnPair, short_bad: Sequence[Point], long_bad: Sequence[Point], budget: float
) -> dict[str, float]:
    """Return the pair's peak burn and whether it fired, from bad-share series of both windows.

    Empty when the series never overlap or there is no budget.
    """
    if budget <= 0:
        return {}
    peak = peak_of_min(_burns(short_bad, budget), _burns(long_bad, budget))
    if peak is None:
        return {}
    return {f"{pair.key}_peak": peak, f"{pair.key}_fired": 1.0 if peak > pair.threshold else 0.0}


def _burns(points: Sequence[Point], budget: float) -> list[Point]:
    return [(t, max(0.0, bad) / budget) for t, bad in points]


def pairs_within(duration_s: float) -> tuple[tuple[BurnPair, ...], tuple[BurnPair, ...]]:
    """Split BURN_PAIRS into those a window of ``duration_s`` can hold and those it cannot."""
    fits = tuple(p for p in BURN_PAIRS if duration_s >= p.long_s)
    return fits, tuple(p for p in BURN_PAIRS if p not in fits)


def describe_budget(stats: Mapping[str, float]) -> str:
    """Return the budget figures of ``stats`` as a short phrase, or "" when there are none."""
    if "error_budget" not in stats:
        return ""
    parts = [f"error budget {_figure(stats['error_budget'] * 100)} %"]
    if "budget_consumed" in stats:
        spent, rate = _figure(stats["budget_consumed"] * 100), _figure(stats["burn_rate"])
        parts.append(f"{spent} % spent (burn rate {rate})")
    for pair in BURN_PAIRS:
        peak = stats.get(f"{pair.key}_peak")
        if peak is not None:
            fired = stats.get(f"{pair.key}_fired") == 1.0
            verdict = "alert fired" if fired else "no alert"
            parts.append(f"{pair.label} burn peak {_figure(peak)} vs {pair.threshold:g}: {verdict}")
    return ", ".join(parts)


def _figure(number: float) -> str:
    """Three significant digits, without exponents: ``0.1``, ``27.8``, ``2,778``."""
    return f"{number:,.0f}" if abs(number) >= 100 else f"{number:.3g}"
