"""Current indicator values during a run, for the progress display.

Each SLO whose value Prometheus can give at any moment (probe and slice uptime, ratio,
threshold) is measured over a short trailing window ending now, as the judge measures a window of
that length; recovery times and preserved sessions only exist after a fault and are skipped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from harness.model import Window
from harness.slo._judge import format_value
from harness.slo._measure import measure
from harness.slo._query import PromQuery
from harness.slo._spec import IndicatorKind, SloSpec
from harness.util.errors import HarnessError

log = logging.getLogger(__name__)

LIVE_KINDS = (
    IndicatorKind.PROBE_UPTIME,
    IndicatorKind.SLICE_UPTIME,
    IndicatorKind.RATIO,
    IndicatorKind.THRESHOLD,
)
NO_DATA = "no data"
QUERY_FAILED = "query failed"


class LiveIndicators:
    """Formatted current values of ``specs`` over the last ``trailing_s`` seconds.

    ``values(now)`` queries Prometheus at most once every ``refresh_s`` seconds of ``now`` and
    answers from the last result in between, so a 1 s display loop costs few queries.
    ``scrape_interval_s`` is the slice length of slice-uptime SLOs that set none.
    """

    def __init__(
        self,
        prom: PromQuery,
        specs: Sequence[SloSpec],
        *,
        trailing_s: float = 30.0,
        refresh_s: float = 5.0,
        scrape_interval_s: float = 1.0,
    ) -> None:
        self.prom = prom
        self.specs = tuple(spec for spec in specs if spec.indicator.kind in LIVE_KINDS)
        self.trailing_s = trailing_s
        self.refresh_s = refresh_s
        self.scrape_interval_s = scrape_interval_s
        self._last: tuple[float, dict[str, str]] | None = None
        self._failed: set[str] = set()

    def values(self, now: float) -> dict[str, str]:
        """Return ``{slo name: formatted value}`` at POSIX time ``now``; never raises."""
        if self._last is not None and 0 <= now - self._last[0] < self.refresh_s:
            return dict(self._last[1])
        window = Window("live", now - self.trailing_s, now)
        current = {spec.name: self._value(spec, window) for spec in self.specs}
        self._last = (now, current)
        return dict(current)

    def _value(self, spec: SloSpec, window: Window) -> str:
        try:
            measured = measure(
                spec,
                prom=self.prom,
                window=window,
                fault=None,
                external={},
                scrape_interval_s=self.scrape_interval_s,
            )
        except HarnessError as exc:
            if spec.name not in self._failed:  # say it once, not every few seconds
                self._failed.add(spec.name)
                log.warning("live value of SLO %s: %s", spec.name, exc)
            return QUERY_FAILED
        if measured.value is None or math.isnan(measured.value):
            return NO_DATA
        return format_value(spec, measured.value)
