"""What tests do to the session's target: run experiments, judge SLOs, drive load.

One ``HarnessSession`` per pytest session; it remembers the experiments it ran so that SLOs
judged afterwards see their faults, as the certification run does.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness.config import Settings
from harness.drivers import chaos
from harness.drivers.locust import LocustRun, LocustSpec
from harness.engine._faults import fault_records
from harness.engine.timeline import Timeline
from harness.model import Endpoints, FaultRecord, LoadSummary, SloResult, Window
from harness.slo import PromQuery, SloSpec, evaluate_slos, format_value, load_slo_file
from harness.util.errors import ConfigError

SLO_DIR = "slos"
LOCUST_GRACE_S = 30.0


class RunChaos(Protocol):
    def __call__(self, experiment: str | Path) -> chaos.ChaosOutcome: ...


class CheckSlo(Protocol):
    def __call__(
        self,
        slo_file_or_name: str | Path,
        *,
        window_s: float,
        names: Sequence[str] | None = None,
        external: Mapping[str, float | None] | None = None,
    ) -> tuple[SloResult, ...]: ...


class RunLoad(Protocol):
    def __call__(
        self,
        seconds: float,
        *,
        users: int | None = None,
        spawn_rate: float | None = None,
        locustfile: str | Path | None = None,
    ) -> LoadSummary: ...


@dataclass(frozen=True)
class SloRow:
    """One verdict for the terminal summary, its value and objective as people read them."""

    test: str
    name: str
    window: str
    verdict: str
    value: str
    objective: str


@dataclass
class HarnessSession:
    """The session's target and what was done to it."""

    root: Path
    target_file: Path
    endpoints: Endpoints
    clock: Callable[[], float] = time.time
    outcomes: list[FaultRecord] = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return Path(self.endpoints.run_dir)

    @property
    def timeline(self) -> Timeline:
        return Timeline(Path(self.endpoints.timeline_file), clock=self.clock)

    def path(self, given: str | Path) -> Path:
        path = Path(given)
        return path if path.is_absolute() else self.root / path

    def run_chaos(self, experiment: str | Path) -> chaos.ChaosOutcome:
        path = self.path(experiment)
        journal = self.run_dir / "chaos" / f"{path.stem}-{len(self.outcomes) + 1}.journal.json"
        with self.timeline.phase(f"fault:{path.stem}"):
            outcome = chaos.run_experiment(
                path,
                config_vars={"harness_target_file": str(self.target_file)},
                journal_path=journal,
            )
        record = FaultRecord(
            name=path.stem,
            experiment=str(path),
            injected_at=None,
            recovered_at=None,
            status=outcome.verdict,
            detail=outcome.detail,
        )
        self.outcomes.append(record)
        return outcome

    def faults(self, window: Window) -> tuple[FaultRecord, ...]:
        """Faults injected by this session's experiments inside ``window``."""
        records = fault_records(self.timeline, self.outcomes)
        return tuple(
            dict.fromkeys(
                r
                for r in records
                if r.injected_at is not None and window.start <= r.injected_at <= window.end
            )
        )

    def slo_checker(self, *, prom: PromQuery, rows: list[SloRow], test: str) -> CheckSlo:
        def check_slo(
            slo_file_or_name: str | Path,
            *,
            window_s: float,
            names: Sequence[str] | None = None,
            external: Mapping[str, float | None] | None = None,
        ) -> tuple[SloResult, ...]:
            specs = _select(load_slo_file(self.slo_path(slo_file_or_name)), names)
            now = self.clock()
            window = Window("run", now - window_s, now)
            results = evaluate_slos(
                specs,
                prom=prom,
                run_window=window,
                phases=tuple(self.timeline.phases()),
                faults=self.faults(window),
                external=dict(external or {}),
            )
            rows.extend(_rows(test, specs, results))
            return results

        return check_slo

    def slo_path(self, given: str | Path) -> Path:
        """A path (relative ones from the rootdir), or a bare name of a file in ``slos/``."""
        text = str(given)
        if isinstance(given, Path) or "/" in text or text.endswith((".yaml", ".yml")):
            return self.path(given)
        return self.root / SLO_DIR / f"{text}.yaml"

    def load_runner(self, settings: Settings) -> RunLoad:
        def run_load(
            seconds: float,
            *,
            users: int | None = None,
            spawn_rate: float | None = None,
            locustfile: str | Path | None = None,
        ) -> LoadSummary:
            spec = LocustSpec(
                locustfile=self.path(locustfile or settings.load.locustfile),
                host=self.endpoints.api_url,
                users=users or settings.load.users,
                spawn_rate=spawn_rate or settings.load.spawn_rate,
                max_runtime_s=max(1, math.ceil(seconds)),
                extra_args=("--harness-target-file", str(self.target_file)),
            )
            out_dir = self.run_dir / "locust" / f"pytest-{time.strftime('%H%M%S')}"
            # Locust is given the target file as a flag, so it needs no environment of ours.
            with LocustRun(spec, out_dir=out_dir, env={}) as load:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    load.popen.wait(timeout=seconds + LOCUST_GRACE_S)
                load.stop()
                return load.summary()

        return run_load


def summary_lines(rows: Sequence[SloRow]) -> list[str]:
    """The verdict table: one line per SLO and window, columns aligned."""
    header = ("SLO", "WINDOW", "VERDICT", "VALUE", "OBJECTIVE", "TEST")
    cells = [header, *((r.name, r.window, r.verdict, r.value, r.objective, r.test) for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def _select(specs: tuple[SloSpec, ...], names: Sequence[str] | None) -> tuple[SloSpec, ...]:
    if names is None:
        return specs
    known = {s.name for s in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"check_slo: no SLO named {', '.join(unknown)}; the file declares "
            f"{', '.join(sorted(known)) or 'none'}."
        )
    return tuple(s for s in specs if s.name in names)


def _rows(test: str, specs: Sequence[SloSpec], results: Sequence[SloResult]) -> list[SloRow]:
    by_name = {s.name: s for s in specs}
    out = []
    for r in results:
        spec = by_name[r.name]
        value = "no data" if r.value is None else format_value(spec, r.value)
        goal = f"{spec.comparator.symbol} {format_value(spec, spec.objective)}"
        out.append(SloRow(test, r.name, r.window.name, str(r.verdict), value, goal))
    return out
