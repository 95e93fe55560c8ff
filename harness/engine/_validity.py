"""Probes that were never taken are not probes that failed: a probe SLO whose blackbox scrape
target was down in its window is INVALID, whatever its value says.

When Prometheus cannot scrape the blackbox exporter, ``probe_success`` has no sample for that
scrape: the probe-based share is then computed over fewer probes and can still read 100 %.
Prometheus's own ``up`` series of the probe job says whether that happened.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace

from harness.model import SloResult, Verdict, Window
from harness.slo import IndicatorKind, PromQuery, SloSpec, range_text
from harness.util.errors import HarnessError

PROBE_KINDS = (IndicatorKind.PROBE_UPTIME, IndicatorKind.SLICE_UPTIME)


def failed_scrapes(prom: PromQuery, job: str, window: Window) -> tuple[int, int]:
    """Return ``(failed, total)`` scrapes of ``job`` over ``window`` from Prometheus's ``up``."""
    series = f'up{{job="{job}"}}[{range_text(window)}]'
    total = _sum(prom, f"sum(count_over_time({series}))", window.end)
    good = _sum(prom, f"sum(sum_over_time({series}))", window.end)
    return round(total - good), round(total)


def with_scrape_gaps(
    results: Sequence[SloResult], specs: Sequence[SloSpec], prom: PromQuery
) -> tuple[SloResult, ...]:
    """Mark INVALID each probe-based result whose probe job missed a scrape in its window."""
    jobs: Mapping[str, str] = {
        s.name: s.indicator.job for s in specs if s.indicator.kind in PROBE_KINDS
    }
    out = []
    for result in results:
        job = jobs.get(result.name)
        if job is None or result.verdict in (Verdict.INVALID, Verdict.SKIPPED):
            out.append(result)
            continue
        try:
            failed, total = failed_scrapes(prom, job, result.window)
        except HarnessError as exc:
            out.append(_invalid(result, f"the scrapes of job '{job}' could not be checked: {exc}"))
            continue
        if failed:
            reason = (
                f"{failed} of {total} scrapes of the probe job '{job}' failed in the window: "
                "those probes were never taken, so the share rests on a gap"
            )
            out.append(_invalid(result, reason))
        else:
            out.append(result)
    return tuple(out)


def _invalid(result: SloResult, reason: str) -> SloResult:
    return replace(result, verdict=Verdict.INVALID, detail=f"{reason}; measured: {result.detail}")


def _sum(prom: PromQuery, query: str, at: float) -> float:
    return sum(value for _, value in prom.instant(query, at) if math.isfinite(value))
