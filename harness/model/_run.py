"""The record of one run: what ``run.json`` is rendered from."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


class Verdict(enum.StrEnum):
    """The outcome of one SLO, one fault or a whole run."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    INVALID = "INVALID"
    SKIPPED = "SKIPPED"


# What a target can do; experiments name what they need in their ``harness`` extension.
CAPABILITIES = frozenset(
    {
        "kill-process",
        "freeze-process",
        "partition",
        "redis-failover",
        "region-outage",
        "disk-fill",
        "cpu-hog",
        "rolling-restart",
        "api-abuse",
        "pod-delete",  # delete game-server Pods
        "node-drain",  # cordon a Node and evict its Pods
        "node-delete",  # delete a Node object
        "scale",  # scale the platform's own Deployments (the API) in the cluster
        "controller-pod-delete",  # delete the Pod of the in-cluster controller's leader
        "network-policy",  # the cluster's network plugin enforces NetworkPolicies
        "audit",  # the platform writes its sealed audit log with a key the run holds
    }
)


class ExitCode(enum.IntEnum):
    """The harness's documented exit codes."""

    PASS = 0
    FAIL = 1
    INFRA = 2
    USAGE = 3


# Worst first: a run is as bad as its worst part.
_SEVERITY = (Verdict.INVALID, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.PASS, Verdict.SKIPPED)


def combine_verdicts(verdicts: Iterable[Verdict]) -> Verdict:
    """Return the worst of ``verdicts``; INVALID when there is nothing to judge.

    A run in which everything was skipped decided nothing, so it is INCONCLUSIVE, never PASS.
    """
    seen = set(verdicts)
    if not seen:
        return Verdict.INVALID
    if seen == {Verdict.SKIPPED}:
        return Verdict.INCONCLUSIVE
    return next(v for v in _SEVERITY if v in seen)


@dataclass(frozen=True)
class Window:
    """A closed time interval ``[start, end]`` with the name of what it covers."""

    name: str
    start: float
    end: float

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class PhaseRecord:
    """One phase of the scenario timeline (deploy, warm-up, baseline, fault, soak, ...)."""

    name: str
    start: float
    end: float


@dataclass(frozen=True)
class FaultRecord:
    """One injected fault and what became of it."""

    name: str
    experiment: str
    injected_at: float | None
    recovered_at: float | None
    status: Verdict
    detail: str = ""

    @property
    def recovery_s(self) -> float | None:
        if self.injected_at is None or self.recovered_at is None:
            return None
        return self.recovered_at - self.injected_at


@dataclass(frozen=True)
class SloResult:
    """The judged value of one SLO over one window."""

    name: str
    verdict: Verdict
    value: float | None
    objective: float
    comparator: str
    window: Window
    severity: str = "gate"
    detail: str = ""
    query: str = ""
    # What the value rests on (probes, requests, injections) and further named figures: the
    # error budget and burn rates of a share, the p50/p95/max of recovery across injections.
    samples: int = 0
    stats: Mapping[str, float] = field(default_factory=dict)
    # "s" for durations (latency, recovery), "share" for shares in [0, 1], "" when unknown.
    unit: str = ""


@dataclass(frozen=True)
class LoadSummary:
    """What the load generator did over the whole run."""

    requests: int
    failures: int
    p50_ms: float | None
    p99_ms: float | None
    rps: float | None = None
    by_name: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    by_phase: Mapping[str, LoadSummary] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRecord:
    """One alert of the platform's rules that fired during the run (from Alertmanager)."""

    name: str
    start: float
    end: float | None  # None: still firing when the run was recorded
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """Everything ``run.json`` says about one run."""

    run_id: str
    profile: str
    target: str
    started_at: float
    ended_at: float
    verdict: Verdict
    exit_code: ExitCode
    slos: tuple[SloResult, ...] = ()
    faults: tuple[FaultRecord, ...] = ()
    phases: tuple[PhaseRecord, ...] = ()
    load: LoadSummary | None = None
    artifacts: Mapping[str, str] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    # Comparisons with the last runs of the same profile (as SLO results; a gate one counts).
    regressions: tuple[SloResult, ...] = ()
    # The platform's alerts that fired while the target ran (information: no verdict).
    alerts: tuple[AlertRecord, ...] = ()
