"""The seam between SLO evaluation and Prometheus: instant queries and range queries.

``harness.drivers.prometheus.PrometheusClient`` satisfies it; tests replay recorded answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeAlias

Sample: TypeAlias = tuple[Mapping[str, str], float]
# One series of a range query: its labels and its ``(POSIX time, value)`` points in time order.
Series: TypeAlias = tuple[Mapping[str, str], list[tuple[float, float]]]


class PromQuery(Protocol):
    """Evaluates PromQL; raises a HarnessError (DriverError) when Prometheus cannot answer."""

    def instant(self, query: str, at: float) -> Sequence[Sample]:
        """Return the ``(labels, value)`` pairs of ``query`` evaluated at POSIX time ``at``."""
        ...

    def range(self, query: str, *, start: float, end: float, step_s: float) -> Sequence[Series]:
        """Return each series of ``query`` evaluated every ``step_s`` over ``[start, end]``."""
        ...
