"""What tests do to the session's target: run experiments, judge SLOs, drive load.

One ``HarnessSession`` per pytest session; it remembers the experiments it ran so that SLOs
judged afterwards see their faults, as the certification run does.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

from harness.config import Settings
from harness.drivers import chaos
from harness.drivers.locust import LocustRun, LocustSpec
from harness.engine._faults import fault_records
from harness.engine.timeline import Timeline
from harness.model import Endpoints, FaultRecord, LoadSummary, SloResult, Verdict, Window
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


class Step(Protocol):
    """One recorded step of a test: attachments and the verdict it ends with."""

    def attach_file(self, name: str, path: Path, ext: str) -> None: ...
    def attach_slo(self, result: SloResult) -> None: ...
    def attach_load(self, summary: LoadSummary) -> None: ...
    def verdict(self, verdict: Verdict, message: str) -> None: ...


class StepRecorder(Protocol):
    """Where the fixtures' steps go: nowhere, or Allure when allure-pytest is active."""

    def step(self, title: str) -> contextlib.AbstractContextManager[Step]: ...


class _NoStep:
    def attach_file(self, name: str, path: Path, ext: str) -> None:
        pass

    def attach_slo(self, result: SloResult) -> None:
        pass

    def attach_load(self, summary: LoadSummary) -> None:
        pass

    def verdict(self, verdict: Verdict, message: str) -> None:
        pass


class NoSteps:
    """Records nothing: the plugin without ``--alluredir``."""

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Step]:
        yield _NoStep()


class _StepFailed(AssertionError):
    """Raised inside an Allure step, and caught outside it, to give the step FAIL's status."""


class _StepBroken(Exception):
    """As ``_StepFailed``, for INVALID: Allure calls a step that raised anything else broken."""


@dataclass
class _AllureStep:
    outcome: tuple[Verdict, str] = (Verdict.PASS, "")

    def attach_file(self, name: str, path: Path, ext: str) -> None:
        if path.is_file():
            _attach(name, path.read_bytes(), ext)

    def attach_slo(self, result: SloResult) -> None:
        from harness.report._allure import slo_values

        if result.query:
            _attach(f"PromQL ({result.name})", result.query, "txt")
        _attach(f"values ({result.name})", json.dumps(slo_values(result), indent=2), "json")

    def attach_load(self, summary: LoadSummary) -> None:
        from harness.report._allure import load_csv

        _attach("Locust statistics", load_csv(summary), "csv")

    def verdict(self, verdict: Verdict, message: str) -> None:
        self.outcome = (verdict, message)

    def marker(self) -> BaseException | None:
        """The exception that gives the step its verdict's status; None for PASS."""
        verdict, message = self.outcome
        text = f"{verdict}: {message}" if message else str(verdict)
        if verdict is Verdict.FAIL:
            return _StepFailed(text)
        if verdict is Verdict.INVALID:
            return _StepBroken(text)
        if verdict in (Verdict.INCONCLUSIVE, Verdict.SKIPPED):
            return pytest.skip.Exception(text)
        return None


class AllureSteps:
    """Records each step with allure-pytest (imported here, only when ``--alluredir`` is on).

    allure-pytest takes a step's status from what ends it, so a step that judged FAIL, INVALID
    or INCONCLUSIVE ends by raising a marker exception that is caught just outside the step;
    anything else a test raises passes through untouched.
    """

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Step]:
        import allure

        handle = _AllureStep()
        raised: list[BaseException] = []
        try:
            with allure.step(title):
                yield handle
                marker = handle.marker()
                if marker is not None:
                    raised.append(marker)
                    raise marker
        except BaseException as exc:
            if not raised or exc is not raised[0]:
                raise


def _attach(name: str, body: str | bytes, ext: str) -> None:
    import allure

    kinds = {"json": allure.attachment_type.JSON, "csv": allure.attachment_type.CSV}
    allure.attach(body, name=name, attachment_type=kinds.get(ext, allure.attachment_type.TEXT))


@dataclass
class HarnessSession:
    """The session's target and what was done to it."""

    root: Path
    target_file: Path
    endpoints: Endpoints
    clock: Callable[[], float] = time.time
    outcomes: list[FaultRecord] = field(default_factory=list)
    steps: StepRecorder = field(default_factory=NoSteps)

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
        runs = 1 + sum(Path(o.experiment).stem == path.stem for o in self.outcomes)
        with (
            self.steps.step(f"run_chaos {path.stem}") as step,
            self.timeline.phase(f"fault:{path.stem}" + (f"#{runs}" if runs > 1 else "")),
        ):
            outcome = chaos.run_experiment(
                path,
                config_vars={"harness_target_file": str(self.target_file)},
                journal_path=journal,
            )
            step.attach_file(f"Chaos Toolkit journal ({path.stem})", outcome.journal_path, "json")
            step.verdict(outcome.verdict, outcome.detail)
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

    def slo_checker(
        self, *, prom: PromQuery, rows: list[SloRow], test: str, scrape_interval_s: float = 1.0
    ) -> CheckSlo:
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
                scrape_interval_s=scrape_interval_s,
            )
            rows.extend(_rows(test, specs, results))
            self._record_slos(str(slo_file_or_name), specs, results)
            return results

        return check_slo

    def _record_slos(
        self, title: str, specs: Sequence[SloSpec], results: Sequence[SloResult]
    ) -> None:
        """One step per SLO: its value against its objective, its PromQL and its figures."""
        by_name = {s.name: s for s in specs}
        for r in results:
            spec = by_name[r.name]
            value = "no data" if r.value is None else format_value(spec, r.value)
            goal = f"{spec.comparator.symbol} {format_value(spec, spec.objective)}"
            with self.steps.step(f"check_slo {title}: {r.name} {value} ({goal})") as step:
                step.attach_slo(r)
                step.verdict(r.verdict, r.detail)

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
            title = f"run_load {seconds:g} s, {spec.users} users, {spec.locustfile.name}"
            with self.steps.step(title) as step, LocustRun(spec, out_dir=out_dir, env={}) as load:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    load.popen.wait(timeout=seconds + LOCUST_GRACE_S)
                load.stop()
                summary = load.summary()
                step.attach_load(summary)
                step.attach_file("locust-stats.json", load.json_path, "json")
                return summary

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
