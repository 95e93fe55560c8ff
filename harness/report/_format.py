"""How reports write instants, durations and SLO values for people and for machines."""

from __future__ import annotations

from datetime import UTC, datetime

from harness.model import SloResult


def iso(instant: float) -> str:
    """Return a POSIX instant as ISO 8601 UTC with milliseconds: ``2026-01-02T03:04:05.678Z``."""
    text = datetime.fromtimestamp(instant, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def iso_or_none(instant: float | None) -> str | None:
    return None if instant is None else iso(instant)


def parse_iso(text: str) -> float:
    """Return the POSIX instant of an ISO 8601 string written by :func:`iso`."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def is_share(result: SloResult) -> bool:
    """Whether the SLO's values are shares in [0, 1] (uptime, success ratio, preserved share).

    From the result's unit; results without one (older run.json files) are read from the
    objective: a lower bound between 0 and 1.
    """
    if result.unit:
        return result.unit == "share"
    return result.comparator in (">=", ">") and 0 <= result.objective <= 1


def is_seconds(result: SloResult) -> bool:
    """Whether the SLO's values are durations in seconds (latency, recovery time)."""
    return result.unit == "s" if result.unit else "seconds" in result.query


def slo_value(result: SloResult, value: float | None) -> str:
    """Return ``value`` as people read it for this SLO: shares as %, durations with a unit."""
    if value is None:
        # A FAIL without a value was measured and found wanting (e.g. never recovered).
        return "none" if result.verdict == "FAIL" else "no data"
    if is_share(result):
        return f"{value * 100:.3f} %"
    if is_seconds(result):
        return seconds(value)
    return f"{value:.4g}"


def seconds(value: float | None) -> str:
    """Return a duration in seconds with a unit; milliseconds below one second."""
    if value is None:
        return "-"
    if abs(value) < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.1f} s"


def objective(result: SloResult) -> str:
    """Return the objective with its comparator, such as ``≥ 99.900 %`` or ``≤ 30.0 s``."""
    symbol = {">=": "≥", "<=": "≤"}.get(result.comparator, result.comparator)
    return f"{symbol} {slo_value(result, result.objective)}"


def truncate(text: str, width: int) -> str:
    """Return ``text`` cut to ``width`` characters, ending with an ellipsis when cut."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
