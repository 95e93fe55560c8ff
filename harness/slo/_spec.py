"""What an SLO file declares: an indicator, a comparator, an objective, a window, a severity."""

from __future__ import annotations

import enum
from dataclasses import dataclass

WINDOW_RUN = "run"
WINDOW_EACH_FAULT = "each-fault"
WINDOW_PLACEHOLDER = "$window"


class IndicatorKind(enum.StrEnum):
    """How the indicator's value is obtained."""

    RATIO = "ratio"
    THRESHOLD = "threshold"
    PROBE_UPTIME = "probe-uptime"
    SLICE_UPTIME = "slice-uptime"
    RECOVERY_TIME = "recovery-time"
    MTTR = "mttr"
    SESSIONS_PRESERVED = "sessions-preserved"

    @property
    def is_share(self) -> bool:
        """Whether values are shares in [0, 1], best shown as percentages."""
        return self in (self.RATIO, self.PROBE_UPTIME, self.SLICE_UPTIME, self.SESSIONS_PRESERVED)


class Comparator(enum.StrEnum):
    """How the measured value must compare with the objective for the SLO to pass."""

    GE = ">="
    LE = "<="
    GT = ">"
    LT = "<"

    def holds(self, value: float, objective: float) -> bool:
        """Return whether ``value <op> objective``."""
        match self:
            case Comparator.GE:
                return value >= objective
            case Comparator.LE:
                return value <= objective
            case Comparator.GT:
                return value > objective
            case Comparator.LT:
                return value < objective

    @property
    def symbol(self) -> str:
        """The comparator as people write it: ≥ ≤ > <."""
        return {">=": "≥", "<=": "≤"}.get(self.value, self.value)


class Statistic(enum.StrEnum):
    """Which figure of the recovery times across repeated injections an mttr SLO is judged on."""

    P50 = "p50"
    P95 = "p95"
    MAX = "max"


@dataclass(frozen=True)
class Healthy:
    """When one sample of an mttr indicator counts as healthy: ``sample <comparator> value``."""

    comparator: Comparator
    value: float

    def holds(self, sample: float) -> bool:
        """Return whether ``sample`` is healthy; NaN never is."""
        return self.comparator.holds(sample, self.value)


class Severity(enum.StrEnum):
    """Whether a breach fails the run (gate) or is only reported (warn)."""

    GATE = "gate"
    WARN = "warn"


@dataclass(frozen=True)
class Indicator:
    """The service level indicator: which fields are set depends on ``kind``.

    ratio: ``good`` and ``total``; threshold: ``promql``; probe-uptime: ``job``;
    slice-uptime: ``job`` and optionally ``slice_s``;
    recovery-time: ``fault`` and ``promql``; sessions-preserved: nothing (the engine measures it);
    mttr: ``fault``, ``promql`` (an SLI evaluated at every step), ``within`` and optionally
    ``consecutive`` and ``statistic``.
    ``fault`` on other kinds restricts an ``each-fault`` window to faults of that name.
    """

    kind: IndicatorKind
    promql: str = ""
    good: str = ""
    total: str = ""
    job: str = ""
    fault: str = ""
    slice_s: float = 0.0  # slice-uptime: the slice length; 0 means the scrape interval
    within: Healthy | None = None  # mttr: when a sample of ``promql`` counts as healthy
    consecutive: int = 3  # mttr: healthy samples in a row that mean "recovered"
    statistic: Statistic = Statistic.MAX  # mttr: judged figure across repeated injections


@dataclass(frozen=True)
class SloSpec:
    """One service level objective as declared in an SLO file."""

    name: str
    indicator: Indicator
    objective: float
    comparator: Comparator
    window: str = WINDOW_RUN
    severity: Severity = Severity.GATE
    description: str = ""
    source: str = ""
