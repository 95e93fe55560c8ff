"""Values shared by every layer of the harness: verdicts, phases, faults, SLO results, runs.

Instants are POSIX timestamps (float seconds, UTC); ``harness.report`` formats them.
"""

from harness.model._endpoints import Endpoints, HostInfo, ProcessInfo
from harness.model._run import (
    CAPABILITIES,
    AlertRecord,
    ExitCode,
    FaultRecord,
    LoadSummary,
    PhaseRecord,
    RunRecord,
    SloResult,
    Verdict,
    Window,
    combine_verdicts,
)

__all__ = [
    "CAPABILITIES",
    "AlertRecord",
    "Endpoints",
    "ExitCode",
    "FaultRecord",
    "HostInfo",
    "LoadSummary",
    "PhaseRecord",
    "ProcessInfo",
    "RunRecord",
    "SloResult",
    "Verdict",
    "Window",
    "combine_verdicts",
]
