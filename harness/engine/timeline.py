"""The run's timeline: phases and fault instants as JSON lines in ``timeline.jsonl``.

Chaos activities (in this process or in a plain ``chaos run``) append fault events; the engine
appends phase events and reads everything back to build the run record. Appends of one short
line are atomic on POSIX, so several writers are safe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

from harness.model import PhaseRecord


class Event(TypedDict, total=False):
    kind: str  # "phase" or "fault"
    name: str
    event: str  # phase: "start" / "end"; fault: "injected" / "recovered" / "failed"
    at: float
    target: str
    pid: int
    detail: str


class Timeline:
    """Appends and reads the events of one run."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock

    def append(self, event: Event) -> Event:
        event.setdefault("at", self.clock())
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event, sort_keys=True) + "\n")
        return event

    def events(self) -> list[Event]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        out: list[Event] = []
        for line in lines:
            if line.strip():
                data: Any = json.loads(line)
                out.append(data)
        return out

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Record the start and end of phase ``name`` (the end also when it raises)."""
        self.append({"kind": "phase", "name": name, "event": "start"})
        try:
            yield
        finally:
            self.append({"kind": "phase", "name": name, "event": "end"})

    def phases(self) -> list[PhaseRecord]:
        starts: dict[str, float] = {}
        out: list[PhaseRecord] = []
        for e in self.events():
            if e.get("kind") != "phase":
                continue
            if e["event"] == "start":
                starts[e["name"]] = e["at"]
            elif e["name"] in starts:
                out.append(PhaseRecord(e["name"], starts.pop(e["name"]), e["at"]))
        return out

    def faults(self) -> list[Event]:
        return [e for e in self.events() if e.get("kind") == "fault"]
