"""Allure results for one run, rendered from its ``run.json`` and the files that names.

One test result per run, named after the profile, in Allure's documented JSON result format
(``<uuid>-result.json`` and ``<uuid>-attachment.<ext>`` files): one step per phase with its
Locust statistics, the fault steps with their Chaos Toolkit journals, one step per SLO with
its PromQL query and values, and the plots as PNG. ``allure generate`` (npm ``allure``, see
``make report``) turns the folder into an HTML report.

Verdicts map to Allure statuses as: PASS passed, FAIL failed, INVALID broken (the run itself
broke), INCONCLUSIVE and SKIPPED skipped (nothing was decided; the message says why).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NotRequired, TypedDict

from harness.model import (
    FaultRecord,
    LoadSummary,
    PhaseRecord,
    RunRecord,
    SloResult,
    Verdict,
    combine_verdicts,
)
from harness.report._format import objective, slo_value
from harness.report._plots import PanelJson, panel_png, read_series, timeline_png
from harness.report._runjson import RunJson, load_run_record, run_to_json
from harness.util.errors import ConfigError

RESULTS_DIR = "allure-results"
SUITE = "certification"
STATUS = {
    Verdict.PASS: "passed",
    Verdict.FAIL: "failed",
    Verdict.INVALID: "broken",
    Verdict.INCONCLUSIVE: "skipped",
    Verdict.SKIPPED: "skipped",
}
_OWN_FILES = ("*-result.json", "*-container.json", "*-attachment.*")
_LOAD_COLUMNS = ("requests", "failures", "p50_ms", "p99_ms", "rps")


class AttachmentJson(TypedDict):
    name: str
    source: str
    type: str


class StatusDetailsJson(TypedDict):
    message: str


class StepJson(TypedDict):
    name: str
    status: str
    stage: str
    start: int
    stop: int
    steps: list[StepJson]
    attachments: list[AttachmentJson]
    parameters: list[dict[str, str]]
    statusDetails: NotRequired[StatusDetailsJson]


class ResultJson(StepJson):
    uuid: str
    historyId: str
    testCaseId: str
    fullName: str
    description: str
    labels: list[dict[str, str]]
    links: list[dict[str, str]]


def write_allure_results(run_dir: Path, *, out: Path | None = None) -> Path:
    """Write the Allure results of the run in ``run_dir`` and return their folder.

    ``out`` defaults to ``<run_dir>/allure-results``; Allure files already there are replaced,
    nothing else in it is touched. Raise ConfigError when ``run_dir`` holds no readable
    ``run.json``.
    """
    path = run_dir / "run.json"
    if not path.is_file():
        raise ConfigError(
            f"{run_dir}: no run.json here; pass a run directory such as reports/<run-id>."
        )
    record = load_run_record(path)
    run = run_to_json(record)  # what the file holds (the loader is its exact inverse)
    out = out or run_dir / RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    for pattern in _OWN_FILES:
        for old in out.glob(pattern):
            old.unlink()
    _Writer(run_dir, out, run, record).write()
    return out


def status_of(verdict: Verdict | str) -> str:
    """Return the Allure status of a harness verdict (see the module's docstring)."""
    return STATUS[Verdict(verdict)]


def load_csv(load: LoadSummary) -> str:
    """Return Locust figures as CSV: the total, then one row per request name."""
    return _table(_rows(load))


def _table(rows: Mapping[str, LoadSummary]) -> str:
    lines = [",".join(("name", *_LOAD_COLUMNS))]
    for name, load in rows.items():
        cells = (load.requests, load.failures, load.p50_ms, load.p99_ms, load.rps)
        lines.append(",".join([_csv_cell(name), *("" if c is None else f"{c:g}" for c in cells)]))
    return "\n".join(lines) + "\n"


def fault_phases(run: RunRecord) -> dict[int, int]:
    """Map each fault's index to the index of the phase it belongs to, when it has one.

    A fault belongs to its experiment's phase (``fault:<stem>``, ``fault:<stem>#2``, ...): the
    one it was injected in, or the first by name when it was never injected. Skipped faults
    have no phase.
    """
    placed: dict[int, int] = {}
    for i, fault in enumerate(run.faults):
        names = {f"fault:{Path(fault.experiment).stem}", f"fault:{fault.name}"}
        own = [j for j, p in enumerate(run.phases) if p.name.partition("#")[0] in names]
        at = fault.injected_at
        timed = [j for j in own if at is not None and _within(at, run.phases[j])]
        if timed or own:
            placed[i] = (timed or own)[0]
    return placed


def slo_values(result: SloResult) -> dict[str, object]:
    """Return what an SLO's verdict rests on, as a JSON object."""
    return {
        "verdict": str(result.verdict),
        "value": result.value,
        "objective": result.objective,
        "comparator": result.comparator,
        "severity": result.severity,
        "window": {"name": result.window.name, "start": result.window.start,
                   "end": result.window.end},
        "samples": result.samples,
        "stats": dict(result.stats),
        "detail": result.detail,
    }  # fmt: skip


class _Writer:
    """Writes one run's result file and its attachments into ``out``."""

    def __init__(self, run_dir: Path, out: Path, run: RunJson, record: RunRecord) -> None:
        self.run_dir, self.out, self.run, self.record = run_dir, out, run, record
        self.series = self._series()

    def write(self) -> None:
        record = self.record
        result: ResultJson = {
            **_step(record.profile, record.verdict, record.started_at, record.ended_at,
                    message=_run_message(record)),
            "uuid": str(uuid.uuid4()),
            "historyId": _digest(f"{record.profile}/{record.target}"),
            "testCaseId": _digest(f"certify/{record.profile}"),
            "fullName": f"harness certify --profile {record.profile} --target {record.target}",
            "description": _description(record),
            "labels": _labels(record),
            "links": [{"name": "HTML report", "url": "../report.html", "type": "link"},
                      {"name": "run.json", "url": "../run.json", "type": "link"}],
        }  # fmt: skip
        result["parameters"] = [
            {"name": "run id", "value": record.run_id},
            {"name": "target", "value": record.target},
            {"name": "duration", "value": f"{record.ended_at - record.started_at:.1f} s"},
        ]
        placed = fault_phases(record)
        result["steps"] = [
            *(self._phase(i, p, placed) for i, p in enumerate(record.phases)),
            *(self._fault(f) for i, f in enumerate(record.faults) if i not in placed),
            *(self._slo(s) for s in record.slos),
        ]
        result["attachments"] = self._run_attachments()
        self._dump(f"{result['uuid']}-result.json", json.dumps(result, indent=2).encode())

    def _phase(self, index: int, phase: PhaseRecord, placed: Mapping[int, int]) -> StepJson:
        faults = [f for i, f in enumerate(self.record.faults) if placed.get(i) == index]
        verdict = combine_verdicts(f.status for f in faults) if faults else Verdict.PASS
        step = _step(f"phase {phase.name}", verdict, phase.start, phase.end)
        step["steps"] = [self._fault(f) for f in faults]
        load = self.record.load.by_phase.get(phase.name) if self.record.load else None
        if load is not None:
            step["attachments"].append(
                self._attach(f"Locust statistics ({phase.name})", load_csv(load), "csv")
            )
        return step

    def _fault(self, fault: FaultRecord) -> StepJson:
        start = self.record.started_at if fault.injected_at is None else fault.injected_at
        step = _step(f"fault {fault.name}", fault.status, start, fault.recovered_at or start,
                     message=fault.detail)  # fmt: skip
        step["parameters"] = [
            {"name": "experiment", "value": fault.experiment},
            {"name": "recovery", "value": "-" if fault.recovery_s is None
             else f"{fault.recovery_s:.2f} s"},
        ]  # fmt: skip
        journal = self._artifact(f"journal:{fault.name}") or self._existing(
            Path("chaos") / f"{Path(fault.experiment).stem}.journal.json"
        )
        if journal is not None:
            step["attachments"].append(
                self._attach_file(f"Chaos Toolkit journal ({fault.name})", journal, "json")
            )
        return step

    def _slo(self, result: SloResult) -> StepJson:
        window = result.window
        name = f"SLO {result.name}: {slo_value(result, result.value)} ({objective(result)})"
        step = _step(name, result.verdict, window.start, window.end, message=result.detail)
        step["parameters"] = [
            {"name": "window", "value": window.name},
            {"name": "severity", "value": result.severity},
            {"name": "samples", "value": str(result.samples)},
        ]
        attach = step["attachments"]
        if result.query:
            attach.append(self._attach(f"PromQL ({result.name})", result.query, "txt"))
        attach.append(self._attach(f"values ({result.name})", _json(slo_values(result)), "json"))
        for panel in self._panels_of(result):
            csv = _series_csv(panel, self.record.started_at)
            attach.append(self._attach(f"series {panel['name']}", csv, "csv"))
        return step

    def _run_attachments(self) -> list[AttachmentJson]:
        out = [self._attach("run.json", _json(self.run), "json")]
        if self.record.load is not None:
            rows = {"run": self.record.load, **self.record.load.by_phase}
            out.append(self._attach("Locust statistics (per phase)", _table(rows), "csv"))
            out.append(
                self._attach("Locust statistics (by request)", load_csv(self.record.load), "csv")
            )
        stats = self._artifact("locust_stats")
        if stats is not None:
            out.append(self._attach_file("locust-stats.json", stats, "json"))
        for name, png in self._plots():
            out.append(self._attach(name, png, "png"))
        return out

    def _plots(self) -> Iterable[tuple[str, bytes]]:
        """The plots: PNG files the run wrote under ``plots/``, or else rendered here."""
        files = sorted((self.run_dir / "plots").glob("*.png"))
        if files:
            yield from ((f"plot {f.stem}", f.read_bytes()) for f in files)
            return
        timeline = timeline_png(self.record)
        if timeline is not None:
            yield "plot timeline", _png(timeline)
        for panel in self.series:
            yield f"plot {panel['name']}", _png(panel_png(panel, self.record))

    def _panels_of(self, result: SloResult) -> list[PanelJson]:
        """The series.json panels about this SLO: named after it or running its query."""
        return [
            p
            for p in self.series
            if p["name"] == result.name
            or any(line.get("query") == result.query for line in p["series"] if result.query)
        ]

    def _series(self) -> list[PanelJson]:
        path = self._artifact("series")
        if path is None:
            return []
        try:
            return list(read_series(path)["panels"])
        except ConfigError:
            return []

    def _artifact(self, key: str) -> Path | None:
        given = self.record.artifacts.get(key)
        return None if given is None else self._existing(Path(given))

    def _existing(self, relative: Path) -> Path | None:
        path = relative if relative.is_absolute() else self.run_dir / relative
        return path if path.is_file() else None

    def _attach(self, name: str, body: str | bytes, ext: str) -> AttachmentJson:
        source = f"{uuid.uuid4()}-attachment.{ext}"
        self._dump(source, body.encode() if isinstance(body, str) else body)
        return {"name": name, "source": source, "type": _MIME[ext]}

    def _attach_file(self, name: str, path: Path, ext: str) -> AttachmentJson:
        return self._attach(name, path.read_bytes(), ext)

    def _dump(self, name: str, body: bytes) -> None:
        partial = self.out / f"{name}.tmp"
        partial.write_bytes(body)
        partial.replace(self.out / name)


_MIME = {"json": "application/json", "csv": "text/csv", "txt": "text/plain", "png": "image/png"}


def _step(name: str, verdict: Verdict, start: float, stop: float, *, message: str = "") -> StepJson:
    step: StepJson = {
        "name": name, "status": status_of(verdict), "stage": "finished",
        "start": _ms(start), "stop": _ms(max(start, stop)),
        "steps": [], "attachments": [], "parameters": [],
    }  # fmt: skip
    if message or verdict is not Verdict.PASS:
        step["statusDetails"] = {"message": f"{verdict}: {message}" if message else str(verdict)}
    return step


def _labels(run: RunRecord) -> list[dict[str, str]]:
    gate = any(s.severity == "gate" for s in run.slos)
    pairs = [
        ("suite", SUITE), ("subSuite", run.target), ("profile", run.profile),
        ("target", run.target), ("severity", "critical" if gate else "normal"),
        ("tag", str(run.verdict)), ("framework", "gsharness"), ("runId", run.run_id),
    ]  # fmt: skip
    return [{"name": name, "value": value} for name, value in pairs]


def _description(run: RunRecord) -> str:
    lines = [
        f"Run **{run.run_id}** of profile **{run.profile}** on target **{run.target}**: "
        f"**{run.verdict}** (exit code {int(run.exit_code)}).",
        "",
        *(f"- {s.name}: {s.verdict} ({slo_value(s, s.value)}, {objective(s)})" for s in run.slos),
    ]
    if run.errors:
        lines += ["", "Errors:", *(f"- {e}" for e in run.errors)]
    return "\n".join(lines)


def _run_message(run: RunRecord) -> str:
    broken = [f"{s.name} {s.verdict}" for s in run.slos if s.verdict is not Verdict.PASS]
    return "; ".join([*run.errors, *broken])


def _within(instant: float, phase: PhaseRecord) -> bool:
    return phase.start <= instant <= phase.end


def _rows(load: LoadSummary) -> dict[str, LoadSummary]:
    rows = {"all": load}
    for name, stats in load.by_name.items():
        rows[name] = LoadSummary(
            requests=int(stats.get("requests", 0)), failures=int(stats.get("failures", 0)),
            p50_ms=stats.get("p50_ms"), p99_ms=stats.get("p99_ms"), rps=stats.get("rps"),
        )  # fmt: skip
    return rows


def _series_csv(panel: PanelJson, t0: float) -> str:
    """Return a panel's points as CSV: seconds since the run started, series label, value."""
    lines = ["seconds,label,value"]
    for line in panel["series"]:
        label = _csv_cell(line.get("label", ""))
        lines += [f"{t - t0:.3f},{label},{v:g}" for t, v in line.get("points") or []]
    return "\n".join(lines) + "\n"


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def _png(data_url: str) -> bytes:
    return base64.b64decode(data_url.partition(",")[2])


def _json(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def _digest(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _ms(instant: float) -> int:
    return round(instant * 1000)
