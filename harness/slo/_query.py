"""The seam between SLO evaluation and Prometheus: one instant query at a given time.

``harness.drivers.prometheus.PrometheusClient`` satisfies it; tests replay recorded answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeAlias

Sample: TypeAlias = tuple[Mapping[str, str], float]


class PromQuery(Protocol):
    """Evaluates PromQL; raises a HarnessError (DriverError) when Prometheus cannot answer."""

    def instant(self, query: str, at: float) -> Sequence[Sample]:
        """Return the ``(labels, value)`` pairs of ``query`` evaluated at POSIX time ``at``."""
        ...
