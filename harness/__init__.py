"""Resilience and validation test harness for game-server hosting platforms.

The public surface is this list; everything else is implementation and may change.
"""

from harness.model import (
    Endpoints,
    ExitCode,
    FaultRecord,
    LoadSummary,
    PhaseRecord,
    RunRecord,
    SloResult,
    Verdict,
    Window,
)
from harness.util.errors import (
    CapabilityMissing,
    ConfigError,
    DriverError,
    HarnessError,
    InfraError,
)

__all__ = [
    "CapabilityMissing",
    "ConfigError",
    "DriverError",
    "Endpoints",
    "ExitCode",
    "FaultRecord",
    "HarnessError",
    "InfraError",
    "LoadSummary",
    "PhaseRecord",
    "RunRecord",
    "SloResult",
    "Verdict",
    "Window",
]
