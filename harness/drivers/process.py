"""Process supervisor: starts real processes, records them in a ledger, stops them on every path.

Every process gets its own session (so a Ctrl-C on the terminal reaches the harness, which then
stops its children in order) and its own log file. The ledger (JSON) lists each pid with its
start time from ``/proc``, so ``harness down`` or the next run can stop what a killed run left
without ever signalling a recycled pid. Three ledgers of one format (:class:`Ledger`) live in a
run directory: the supervisor's ``ledger.json``, :data:`CHAOS_LEDGER` (processes chaos
activities start) and the Redis restarts of :mod:`harness.targets._redis`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.util.errors import InfraError

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0


def proc_start_ticks(pid: int) -> int | None:
    """Return the start time of ``pid`` in clock ticks since boot, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


SUPERVISOR_LEDGER = "ledger.json"
# Processes chaos activities start (restarted replicas, CPU hogs); see harness.chaos._ledger.
CHAOS_LEDGER = "ledger-chaos.json"


def alive(pid: int, start_ticks: int | None) -> bool:
    """Return whether the process ``pid`` that started at ``start_ticks`` still runs."""
    ticks = proc_start_ticks(pid)
    if ticks is None or (start_ticks is not None and ticks != start_ticks):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class ManagedProcess:
    """One supervised process."""

    name: str
    role: str
    argv: tuple[str, ...]
    popen: subprocess.Popen[bytes] | None
    pid: int
    start_ticks: int | None
    log_path: Path
    expected_exit: bool = False

    @classmethod
    def started(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        role: str,
        pid: int,
        log_path: Path,
        popen: subprocess.Popen[bytes] | None = None,
    ) -> ManagedProcess:
        """The process ``pid`` just started, with its start time read from ``/proc``."""
        return cls(
            name=name,
            role=role,
            argv=tuple(argv),
            popen=popen,
            pid=pid,
            start_ticks=proc_start_ticks(pid),
            log_path=log_path,
        )

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> ManagedProcess:
        """The process a ledger entry lists (not started by this process: no ``popen``)."""
        return cls(
            name=entry["name"],
            role=entry.get("role", ""),
            argv=tuple(entry.get("argv", ())),
            popen=None,
            pid=int(entry["pid"]),
            start_ticks=entry.get("start_ticks"),
            log_path=Path(entry.get("log") or os.devnull),
        )

    def entry(self) -> dict[str, Any]:
        """This process as a ledger entry."""
        return {
            "name": self.name,
            "role": self.role,
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "argv": list(self.argv),
            "log": str(self.log_path),
        }

    def running(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return alive(self.pid, self.start_ticks)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start_logged(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session, its output appended to ``log_path``; OSError when it
    cannot start."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )


@dataclass(frozen=True)
class Ledger:
    """A file listing processes: ``{"owner_pid": ..., "processes": [{name, role, pid,
    start_ticks, argv, log}]}``.

    Several processes may write one ledger (the harness, a plain ``chaos run`` sharing its
    target): every update holds an exclusive lock on ``<stem>.lock`` beside it and replaces the
    file atomically. Reading never fails: a missing or broken file lists nothing.
    """

    path: Path

    def entries(self) -> list[dict[str, Any]]:
        """The entries, oldest first."""
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        procs: list[dict[str, Any]] = data.get("processes", []) if isinstance(data, dict) else []
        return procs

    @contextlib.contextmanager
    def update(self) -> Iterator[list[dict[str, Any]]]:
        """Read the entries, let the caller change the list in place, and write it back."""
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            procs = self.entries()
            yield procs
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"owner_pid": os.getpid(), "processes": procs}, indent=2))
            tmp.replace(self.path)

    def add(self, proc: ManagedProcess, *, replace: bool = False) -> None:
        """List ``proc``, after (with ``replace``: instead of) the entries of its name."""
        with self.update() as procs:
            if replace:
                procs[:] = [p for p in procs if p.get("name") != proc.name]
            procs.append(proc.entry())

    def forget(self, names: Sequence[str]) -> None:
        """Drop the entries of ``names`` (they were stopped)."""
        with self.update() as procs:
            procs[:] = [p for p in procs if p.get("name") not in names]

    def stop(self) -> list[str]:
        """Stop every still-running process listed (newest first); return the names stopped."""
        running = [p for p in map(ManagedProcess.from_entry, self.entries()) if p.running()]
        stop_processes(list(reversed(running)))
        return [p.name for p in running]


class Supervisor:
    """Owns a set of processes of one run; use it as a context manager to stop them all."""

    def __init__(self, run_dir: Path, *, detach: bool = False) -> None:
        self.run_dir = run_dir
        self.detach = detach
        self.processes: dict[str, ManagedProcess] = {}
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.ledger_path = run_dir / SUPERVISOR_LEDGER

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.detach:
            self.stop_all()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        role: str,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        """Start ``argv`` as process ``name``; its output goes to ``logs/<name>.log``."""
        if name in self.processes:
            raise InfraError(f"Process name {name!r} is already in use in this run.")
        log_path = self.run_dir / "logs" / f"{name}.log"
        full_env = {**os.environ, **(env or {})}
        try:
            popen = start_logged(argv, log_path=log_path, env=full_env, cwd=cwd)
        except OSError as exc:
            raise InfraError(f"Could not start {name} ({argv[0]}): {exc}.") from exc
        proc = ManagedProcess.started(
            name, argv, role=role, pid=popen.pid, log_path=log_path, popen=popen
        )
        self.processes[name] = proc
        self._write_ledger()
        log.info("started %s (pid %d): %s", name, popen.pid, " ".join(argv))
        return proc

    def restart(self, name: str) -> ManagedProcess:
        """Start ``name`` again with its argv (as a service manager restarts a killed service);
        stop what is left of it first. Its log continues in the same file."""
        old = self.processes[name]
        if old.running():
            stop_processes([old])
        del self.processes[name]
        return self.start(name, old.argv, role=old.role)

    def adopt(
        self, name: str, popen: subprocess.Popen[bytes], *, role: str, log_path: Path
    ) -> ManagedProcess:
        """Record a process another driver started, so the ledger can stop it after a crash."""
        argv = [str(a) for a in popen.args] if isinstance(popen.args, list) else []
        proc = ManagedProcess.started(
            name, argv, role=role, pid=popen.pid, log_path=log_path, popen=popen
        )
        proc.expected_exit = True  # its driver stops it; its exit is no fault of the platform
        self.processes[name] = proc
        self._write_ledger()
        return proc

    def adopt_ledger(self, ledger_path: Path) -> list[str]:
        """Take over the live processes of another ledger that replace ones of ours by name.

        Chaos activities restart replicas themselves (a rolling restart, a Redis brought back)
        and list them in their own ledger; once adopted, a restarted replica is neither
        restarted again nor taken for dead, and :meth:`stop_all` stops it. Returns the names.
        """
        adopted = []
        for entry in Ledger(ledger_path).entries():
            theirs = ManagedProcess.from_entry(entry)
            ours = self.processes.get(theirs.name)
            if ours is None or ours.pid == theirs.pid or not theirs.running():
                continue
            log_path = theirs.log_path if entry.get("log") else ours.log_path
            self.processes[theirs.name] = dataclasses.replace(
                theirs, role=ours.role, log_path=log_path
            )
            adopted.append(theirs.name)
        if adopted:
            self._write_ledger()
        return adopted

    def check_alive(self, name: str) -> None:
        """Raise InfraError with the log tail when ``name`` has exited."""
        proc = self.processes[name]
        if not proc.running():
            raise InfraError(
                f"{name} exited during start-up; the end of {proc.log_path}:\n{proc.log_tail()}"
            )

    def unexpected_exits(self) -> list[str]:
        """Names of processes that died without a fault having been recorded against them."""
        return [p.name for p in self.processes.values() if not p.expected_exit and not p.running()]

    def stop_all(self) -> None:
        """SIGTERM every process (newest first), then SIGKILL what is left after a grace period."""
        stop_processes(list(reversed(self.processes.values())))
        self.processes.clear()
        self._write_ledger()

    def _write_ledger(self) -> None:
        with Ledger(self.ledger_path).update() as procs:
            procs[:] = [p.entry() for p in self.processes.values()]


def stop_processes(processes: Sequence[ManagedProcess]) -> None:
    """Stop ``processes`` and their process groups: SIGTERM, wait, then SIGKILL."""
    for proc in processes:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in processes:
        while proc.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.running():
            log.warning("%s (pid %d) ignored SIGTERM; sending SIGKILL", proc.name, proc.pid)
            _signal_group(proc, signal.SIGKILL)
        if proc.popen is not None:
            try:
                proc.popen.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log.error("%s (pid %d) did not exit after SIGKILL", proc.name, proc.pid)


def _signal_group(proc: ManagedProcess, sig: signal.Signals) -> None:
    # Each process leads its own session and group (start_new_session), so pgid == pid; signal
    # the group only while its leader is the very process we started (never a recycled pid).
    if not proc.running():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_ledger(ledger_path: Path) -> list[str]:
    """Stop every still-running process listed in a ledger; return the names stopped."""
    return Ledger(ledger_path).stop()
