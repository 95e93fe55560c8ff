"""Is the load generator healthy? Locust's processes read from the outside: how one ended (with
the file and line of a locustfile error), Locust's own CPU warnings, and each process's CPU demand
sustained over a window (a saturated worker limits the load the run claims to apply).
"""

from __future__ import annotations

import os
import re
import signal
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# Locust's CPU monitor warns in the process that ran hot; a master also warns for its workers.
CPU_WARNINGS = ("CPU usage above", "exceeded cpu threshold")
SATURATION_SHARE = 0.90
SATURATION_WINDOW_S = 10.0

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log, or a note that there is none."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def exit_text(code: int) -> str:
    """``code 1`` or ``signal SIGKILL``, from a Popen return code."""
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def traceback_origin(text: str) -> str:
    """``file:line: Exception: message`` of the last traceback in ``text`` whose innermost frame
    outside Locust, the interpreter and the virtualenv names a file; empty when there is none."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent")]
    if not starts:
        return ""
    body = lines[starts[-1] + 1 :]
    frames = [m for m in map(_FRAME.match, body) if m and _is_user_file(m["file"])]
    if not frames:
        return ""
    error = next((line.strip() for line in reversed(body) if line and not line[0].isspace()), "")
    return f"{frames[-1]['file']}:{frames[-1]['line']}: {error}"


def _is_user_file(name: str) -> bool:
    return not (
        name.startswith("<") or "/site-packages/" in name or "/lib/python3" in name
    ) and not name.endswith("/bin/locust")


def cpu_warning(paths: Iterable[Path]) -> str:
    """The first of Locust's own CPU warnings in these logs, with the log's name; else empty."""
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            if any(w in line for w in CPU_WARNINGS):
                return f"{path.name}: {line.strip()}"
    return ""


def cpu_demand_s(pid: int) -> float | None:
    """Seconds ``pid``'s main thread has spent on a CPU or runnable and waiting for one
    (``/proc/PID/schedstat``), else its CPU time (``/proc/PID/stat``); None when it is gone.

    A worker starved by other processes uses little CPU yet cannot keep its schedule: it is
    as saturated as one that burns a core, and the waiting shows it.
    """
    try:
        run_ns, wait_ns, _slices = Path(f"/proc/{pid}/schedstat").read_text().split()
        return (int(run_ns) + int(wait_ns)) / 1e9
    except (OSError, ValueError):
        pass
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


@dataclass
class CpuWindow:
    """Samples ``(seconds, CPU demand seconds)`` of one process; ``share()`` is its demand over
    the last ``window_s`` as a share of one core, once the samples span that long."""

    window_s: float = SATURATION_WINDOW_S
    samples: deque[tuple[float, float]] = field(default_factory=deque)

    def add(self, at: float, cpu_s: float) -> None:
        self.samples.append((at, cpu_s))
        while len(self.samples) > 2 and at - self.samples[1][0] >= self.window_s:
            self.samples.popleft()

    def share(self) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, c0), (t1, c1) = self.samples[0], self.samples[-1]
        if t1 - t0 < self.window_s:
            return None
        return (c1 - c0) / (t1 - t0)


@dataclass
class CpuWatch:
    """CPU demand windows of named processes; remembers the first that stayed above the
    threshold."""

    window_s: float = SATURATION_WINDOW_S
    threshold: float = SATURATION_SHARE
    windows: dict[str, CpuWindow] = field(default_factory=dict)
    finding: str = ""

    def sample(self, name: str, pid: int, at: float) -> None:
        demand = cpu_demand_s(pid)
        if demand is None:
            return
        window = self.windows.setdefault(name, CpuWindow(self.window_s))
        window.add(at, demand)
        share = window.share()
        if not self.finding and share is not None and share > self.threshold:
            self.finding = (
                f"{name} (pid {pid}) was on a CPU or waiting for one {share:.0%} of the "
                f"last {self.window_s:g} s (above {self.threshold:.0%}): it could not keep up"
            )
