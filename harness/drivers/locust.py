"""Locust driver: always a subprocess (importing locust monkey-patches the process with gevent).

The run is bounded twice: Locust's own ``--run-time`` and our SIGTERM at the end of the
scenario. Statistics come from Locust's ``--json-file``, written when it stops.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.model import LoadSummary, PhaseRecord
from harness.util.errors import DriverError

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class LocustSpec:
    """What to run: the locustfile, the API host, users and the hard upper bound on duration."""

    locustfile: Path
    host: str
    users: int
    spawn_rate: float
    max_runtime_s: int
    extra_args: tuple[str, ...] = ()


def locust_binary() -> str:
    """The ``locust`` script beside this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).with_name("locust")
    if beside.exists():
        return str(beside)
    found = shutil.which("locust")
    if found is None:
        raise DriverError("Locust is not installed in this environment; run scripts/setup.sh.")
    return found


class LocustRun:
    """One headless Locust process; a context manager that always stops it."""

    def __init__(self, spec: LocustSpec, *, out_dir: Path, env: Mapping[str, str]) -> None:
        self.spec = spec
        self.out_dir = out_dir
        self.env = dict(env)
        self.json_path = out_dir / "locust-stats.json"
        self.per_second_path = out_dir / "per-second.json"
        self.log_path = out_dir / "locust.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        s = self.spec
        return [
            locust_binary(),
            "-f",
            str(s.locustfile),
            "--headless",
            "-u",
            str(s.users),
            "-r",
            str(s.spawn_rate),
            "-t",
            f"{s.max_runtime_s}s",
            "--host",
            s.host,
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--csv",
            str(self.out_dir / "locust"),
            "--json-file",
            str(self.out_dir / "locust-stats"),
            "--stop-timeout",
            "5",
            "--harness-stats-file",
            str(self.per_second_path),
            "--exit-code-on-error",
            "0",
            *s.extra_args,
        ]

    def __enter__(self) -> LocustRun:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self._proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        log.info("locust started (pid %d)", self._proc.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise DriverError("Locust is not running.")
        return self._proc

    def check_running(self) -> None:
        """Raise DriverError with Locust's own words when it exited early (a locustfile error)."""
        if self._proc is not None and self._proc.poll() is not None:
            raise DriverError(
                f"Locust exited early with code {self._proc.returncode}; the end of "
                f"{self.log_path}:\n{_tail(self.log_path)}"
            )

    def stop(self) -> int | None:
        """SIGTERM Locust (it then writes its statistics), SIGKILL if it hangs; return its code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning("locust ignored SIGTERM for %g s; killing it", STOP_TIMEOUT_S)
                proc.kill()
                proc.wait(timeout=5)
        return proc.returncode

    def summary(self) -> LoadSummary:
        """Whole-run statistics from Locust's JSON file."""
        try:
            entries = json.loads(self.json_path.read_text())
        except (OSError, ValueError) as exc:
            raise DriverError(
                f"Locust wrote no readable statistics to {self.json_path} ({exc}); see "
                f"{self.log_path}:\n{_tail(self.log_path)}"
            ) from exc
        return summarize(entries)

    def phase_summaries(self, phases: Sequence[PhaseRecord]) -> dict[str, LoadSummary]:
        """Statistics of each phase, cut from the per-second file by the phases' windows."""
        try:
            seconds = json.loads(self.per_second_path.read_text())["seconds"]
        except (OSError, ValueError, KeyError):
            log.warning(
                "no per-second statistics in %s; per-phase load is unknown", self.per_second_path
            )
            return {}
        return {p.name: summarize_window(seconds, p.start, p.end) for p in phases}

    def saturated(self) -> str:
        """Locust's own warning that its CPU limited the load, or an empty string."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        hits = [line for line in text.splitlines() if "CPU usage above" in line]
        return hits[0].strip() if hits else ""


def summarize_window(
    seconds: Mapping[str, Mapping[str, Mapping[str, Any]]], start: float, end: float
) -> LoadSummary:
    """Merge the per-second buckets whose second lies in ``[start, end)`` into one summary."""
    entries: dict[str, dict[str, Any]] = {}
    first = last = None
    for second, names in seconds.items():
        t = int(second)
        if not start <= t + 0.5 < end:
            continue
        first = t if first is None else min(first, t)
        last = t if last is None else max(last, t)
        for name, b in names.items():
            e = entries.setdefault(name, {"n": 0, "f": 0, "rt": {}})
            e["n"] += b["n"]
            e["f"] += b["f"]
            for ms, count in b["rt"].items():
                e["rt"][ms] = e["rt"].get(ms, 0) + count
    end_time = (last + 1) if last is not None else None
    return summarize(
        [
            {
                "method": key.partition(" ")[0],
                "name": key.partition(" ")[2],
                "num_requests": e["n"],
                "num_failures": e["f"],
                "response_times": e["rt"],
                "start_time": first,
                "last_request_timestamp": end_time,
            }
            for key, e in entries.items()
        ]
    )


def summarize(entries: Sequence[Mapping[str, Any]]) -> LoadSummary:
    """Aggregate Locust's per-request entries: totals, exact percentiles from the histograms."""
    histogram: dict[int, int] = {}
    by_name: dict[str, dict[str, float]] = {}
    requests = failures = 0
    first = last = None
    for e in entries:
        n, f = int(e["num_requests"]), int(e["num_failures"])
        requests += n
        failures += f
        # Keys are milliseconds as text; older files hold them as floats ("250.0").
        times = {round(float(k)): int(v) for k, v in e.get("response_times", {}).items()}
        for k, v in times.items():
            histogram[k] = histogram.get(k, 0) + v
        by_name[f"{e['method']} {e['name']}"] = {
            "requests": n,
            "failures": f,
            "p50_ms": _percentile(times, 0.50) or 0.0,
            "p99_ms": _percentile(times, 0.99) or 0.0,
        }
        first = min(filter(None, (first, e.get("start_time"))), default=None)
        last = max(filter(None, (last, e.get("last_request_timestamp"))), default=None)
    duration = (last - first) if first is not None and last is not None else 0.0
    return LoadSummary(
        requests=requests,
        failures=failures,
        p50_ms=_percentile(histogram, 0.50),
        p99_ms=_percentile(histogram, 0.99),
        rps=(requests / duration) if duration > 0 else None,
        by_name=by_name,
    )


def _percentile(histogram: Mapping[int, int], q: float) -> float | None:
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return float(value)
    return float(max(histogram))


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
