"""Locust driver: always subprocesses (importing locust monkey-patches the process with gevent).

With more than one usable core Locust runs distributed: one master (it holds the schedule, the
run time, Locust's merged statistics and the Prometheus listener) and one worker per core (they
make the requests), each a process of ours with its own log, so a worker that dies is seen at
once with its own last words. With one core, or ``workers=1``, one process does everything.

The run is bounded twice: Locust's own ``--run-time`` and our SIGTERM at the end of the
scenario. Whole-run statistics come from Locust's ``--json-file``, written when it stops.
Per-second statistics (for the phases) are written by each process that made requests and
merged here; in a distributed run they are also the whole-run figures, being exact where the
master's merged totals can miss a worker's last report.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.drivers._locust_health import CpuWatch, cpu_warning, exit_text, tail, traceback_origin
from harness.model import LoadSummary, PhaseRecord
from harness.util.errors import DriverError
from harness.util.net import free_port

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 20.0
WORKER_STOP_TIMEOUT_S = 10.0
# How long a master waits for its workers to connect before it gives up (and exits).
EXPECT_WORKERS_MAX_WAIT_S = 60
# How long stop() waits for a master that is still starting (see LocustRun._await_started).
STARTUP_WAIT_S = 20.0


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class LocustSpec:
    """What to run: the locustfile, the API host, users and the hard upper bound on duration.

    ``workers``: worker processes; None means one per usable core, and 1 (or a single usable
    core) means one plain process. ``metrics_port``: the master (or single process) serves
    Prometheus metrics there, on ``metrics_host``; None serves none.
    """

    locustfile: Path
    host: str
    users: int
    spawn_rate: float
    max_runtime_s: int
    extra_args: tuple[str, ...] = ()
    workers: int | None = None
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"


def locust_binary() -> str:
    """The ``locust`` script beside this interpreter (the project's venv), else on PATH."""
    beside = Path(sys.executable).with_name("locust")
    if beside.exists():
        return str(beside)
    found = shutil.which("locust")
    if found is None:
        raise DriverError("Locust is not installed in this environment; run scripts/setup.sh.")
    return found


@dataclass
class LocustProcess:
    """One Locust process of a run: its name, command line, log and, once started, its Popen."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)


class LocustRun:
    """One headless Locust run (one process, or a master and its workers); a context manager
    that always stops every process it started."""

    def __init__(self, spec: LocustSpec, *, out_dir: Path, env: Mapping[str, str]) -> None:
        self.spec = spec
        self.out_dir = out_dir
        self.env = dict(env)
        self.workers = usable_cores() if spec.workers is None else spec.workers
        if self.workers < 1:
            raise DriverError(f"Locust needs at least one worker process, not {self.workers}.")
        self.distributed = self.workers > 1
        self.master_port = free_port() if self.distributed else 0
        self.json_path = out_dir / "locust-stats.json"
        self.per_second_path = out_dir / "per-second.json"
        self.log_path = out_dir / "locust.log"
        self.processes = [LocustProcess("locust", self.argv(), self.log_path)]
        if self.distributed:
            self.processes += [
                LocustProcess(f"locust-worker-{i}", self.worker_argv(i), self._worker_log(i))
                for i in range(1, self.workers + 1)
            ]
        self._cpu = CpuWatch()
        self._ended: dict[str, str] = {}  # process name -> why it ended before stop()
        self._stopped = False
        self._seconds_complete = False  # every worker wrote its per-second file

    def argv(self) -> list[str]:
        """The command line of the master, or of the single process."""
        s = self.spec
        argv = [
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
            "--exit-code-on-error",
            "0",
        ]
        if self.distributed:
            argv += [
                "--master",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                str(self.master_port),
                "--expect-workers",
                str(self.workers),
                "--expect-workers-max-wait",
                str(EXPECT_WORKERS_MAX_WAIT_S),
            ]
        else:
            argv += ["--harness-stats-file", str(self.per_second_path)]
        if s.metrics_port is not None:
            argv += ["--harness-metrics-port", str(s.metrics_port)]
            argv += ["--harness-metrics-host", s.metrics_host]
        return [*argv, *s.extra_args]

    def worker_argv(self, index: int) -> list[str]:
        """The command line of worker ``index`` (from 1): it writes its own per-second file."""
        s = self.spec
        return [
            locust_binary(),
            "-f",
            str(s.locustfile),
            "--worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            str(self.master_port),
            "--host",
            s.host,
            "--loglevel",
            "WARNING",
            "--stop-timeout",
            "5",
            "--harness-stats-file",
            str(self._worker_stats(index)),
            *s.extra_args,
        ]

    def _worker_log(self, index: int) -> Path:
        return self.out_dir / f"locust-worker-{index}.log"

    def _worker_stats(self, index: int) -> Path:
        return self.out_dir / f"per-second-worker-{index}.json"

    def __enter__(self) -> LocustRun:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            for proc in self.processes:
                self._start(proc)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self, proc: LocustProcess) -> None:
        with proc.log_path.open("ab") as log_file:
            try:
                proc.popen = subprocess.Popen(
                    proc.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise DriverError(f"Locust ({proc.name}) could not be started: {exc}.") from exc
        log.info("%s started (pid %d)", proc.name, proc.popen.pid)

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        """The master's process (the single process when not distributed)."""
        popen = self.processes[0].popen
        if popen is None or self._stopped:
            raise DriverError("Locust is not running.")
        return popen

    def started(self) -> list[tuple[str, subprocess.Popen[bytes], Path]]:
        """Name, process and log of every process started, for a supervisor's ledger."""
        return [(p.name, p.popen, p.log_path) for p in self.processes if p.popen is not None]

    def check_running(self) -> None:
        """Raise DriverError when a Locust process ended before ``stop()`` (a locustfile error,
        a crashed or killed worker), naming the process, its file and line or its exit, and its
        log; also after ``stop()``, for an end it noticed. Samples each process's CPU."""
        now = time.monotonic()
        if not self._stopped:
            for proc in self.processes:
                if proc.popen is None:
                    continue
                if proc.popen.poll() is None:
                    self._cpu.sample(proc.name, proc.popen.pid, now)
                elif proc.name not in self._ended:
                    self._ended[proc.name] = _end_reason(proc)
        if self._ended:
            raise DriverError(self.failure())

    def failure(self) -> str:
        """Why the run's Locust broke (first the process with a traceback), or an empty string."""
        if not self._ended:
            return ""
        reasons = sorted(self._ended.items(), key=lambda item: "stopped on an error" not in item[1])
        first, others = reasons[0][1], [name for name, _ in reasons[1:]]
        return first + (f"\n(also ended early: {', '.join(others)})" if others else "")

    def stop(self) -> int | None:
        """SIGTERM the master (it then tells its workers to quit and writes its statistics);
        let the workers finish, SIGTERM and then SIGKILL any that hang; merge their per-second
        files; return the master's exit code."""
        if self._stopped:
            return self.processes[0].popen.returncode if self.processes[0].popen else None
        for proc in self.processes:
            if proc.popen is not None and proc.popen.poll() is not None:
                self._ended.setdefault(proc.name, _end_reason(proc))
        self._stopped = True
        master, *workers = self.processes
        self._await_started(master)
        _terminate(master, STOP_TIMEOUT_S)
        deadline = time.monotonic() + WORKER_STOP_TIMEOUT_S
        for proc in workers:
            if proc.popen is not None:
                try:
                    proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _terminate(proc, STOP_TIMEOUT_S)
        if self.distributed:
            self._merge_per_second()
        return master.popen.returncode if master.popen is not None else None

    def _await_started(self, master: LocustProcess) -> None:
        """Before stopping a run of a few seconds, let the master come up (it writes its first
        history row once its runner is running; bounded): a Locust stopped while still
        importing writes no statistics at all, and the run would be INVALID for no fault."""
        deadline = time.monotonic() + STARTUP_WAIT_S
        history = self.out_dir / "locust_stats_history.csv"
        while (
            master.popen is not None
            and master.popen.poll() is None
            and not history.exists()
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)

    def _merge_per_second(self) -> None:
        merged: dict[str, dict[str, dict[str, Any]]] = {}
        missing = []
        for index in range(1, self.workers + 1):
            path = self._worker_stats(index)
            try:
                seconds = json.loads(path.read_text())["seconds"]
            except (OSError, ValueError, KeyError):
                missing.append(index)
                continue
            merge_seconds(merged, seconds)
        if missing:  # a killed worker, or a locustfile that does not import _harness_stats
            log.warning("Locust workers %s wrote no per-second statistics", missing)
        if len(missing) < self.workers:
            self.per_second_path.write_text(json.dumps({"seconds": merged}))
        self._seconds_complete = not missing

    def _seconds(self) -> dict[str, Any] | None:
        try:
            seconds: dict[str, Any] = json.loads(self.per_second_path.read_text())["seconds"]
        except (OSError, ValueError, KeyError):
            return None
        return seconds

    def summary(self) -> LoadSummary:
        """Whole-run statistics: Locust's JSON file, or in a distributed run the workers' own
        per-second counts (exact) when every worker wrote them."""
        # The workers' files first: a master stopped before its workers reported (a run of a
        # few seconds) may write no JSON at all, while the workers' files are complete.
        if self.distributed and self._seconds_complete and (seconds := self._seconds()) is not None:
            return summarize_window(seconds, -math.inf, math.inf)
        try:
            entries = json.loads(self.json_path.read_text())
        except (OSError, ValueError) as exc:
            raise DriverError(
                f"Locust wrote no readable statistics to {self.json_path} ({exc}); see "
                f"{self.log_path}:\n{tail(self.log_path)}"
            ) from exc
        return summarize(entries)

    def phase_summaries(self, phases: Sequence[PhaseRecord]) -> dict[str, LoadSummary]:
        """Statistics of each phase, cut from the per-second file by the phases' windows."""
        seconds = self._seconds()
        if seconds is None:
            log.warning(
                "no per-second statistics in %s; per-phase load is unknown", self.per_second_path
            )
            return {}
        return {p.name: summarize_window(seconds, p.start, p.end) for p in phases}

    def saturated(self) -> str:
        """Why the load generator limited the load, or an empty string: Locust's own CPU
        warning in a worker's (or the master's) log, or a process that stayed above 90 % of a
        core for 10 s while ``check_running`` sampled it."""
        logs = [p.log_path for p in self.processes[1:]] + [self.log_path]
        return cpu_warning(logs) or self._cpu.finding


def _end_reason(proc: LocustProcess) -> str:
    assert proc.popen is not None
    code = proc.popen.returncode
    text = tail(proc.log_path, 200)
    where = f"the end of {proc.log_path}:\n{tail(proc.log_path)}"
    if origin := traceback_origin(text):
        return f"Locust ({proc.name}) stopped on an error at {origin}; fix it. See {where}"
    return (
        f"Locust ({proc.name}, pid {proc.popen.pid}) exited early with {exit_text(code)}; {where}"
    )


def _terminate(proc: LocustProcess, timeout_s: float) -> None:
    popen = proc.popen
    if popen is None or popen.poll() is not None:
        return
    popen.send_signal(signal.SIGTERM)
    try:
        popen.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.warning("%s ignored SIGTERM for %g s; killing it", proc.name, timeout_s)
        popen.kill()
        popen.wait(timeout=5)


def merge_seconds(
    into: dict[str, dict[str, dict[str, Any]]], seconds: Mapping[str, Mapping[str, Any]]
) -> None:
    """Add one process's per-second buckets to ``into`` (both keyed as the file is)."""
    for second, names in seconds.items():
        target = into.setdefault(second, {})
        for name, b in names.items():
            e = target.setdefault(name, {"n": 0, "f": 0, "rt": {}})
            e["n"] += b["n"]
            e["f"] += b["f"]
            for ms, count in b["rt"].items():
                e["rt"][ms] = e["rt"].get(ms, 0) + count


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
