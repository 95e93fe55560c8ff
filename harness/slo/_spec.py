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
    RECOVERY_TIME = "recovery-time"
    SESSIONS_PRESERVED = "sessions-preserved"

    @property
    def is_share(self) -> bool:
        """Whether values are shares in [0, 1], best shown as percentages."""
        return self in (self.RATIO, self.PROBE_UPTIME, self.SESSIONS_PRESERVED)


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


class Severity(enum.StrEnum):
    """Whether a breach fails the run (gate) or is only reported (warn)."""

    GATE = "gate"
    WARN = "warn"


@dataclass(frozen=True)
class Indicator:
    """The service level indicator: which fields are set depends on ``kind``.

    ratio: ``good`` and ``total``; threshold: ``promql``; probe-uptime: ``job``;
    recovery-time: ``fault`` and ``promql``; sessions-preserved: nothing (the engine measures it).
    ``fault`` on other kinds restricts an ``each-fault`` window to faults of that name.
    """

    kind: IndicatorKind
    promql: str = ""
    good: str = ""
    total: str = ""
    job: str = ""
    fault: str = ""


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
