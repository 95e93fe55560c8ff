"""The benchmarks' figures: distributions (p50, max, n, unit) and single values, printed as one
table and saved to ``reports/bench/<benchmark>-<run id>.json`` with the machine's load.

Every benchmark measures on a shared 2-core machine, so each saved file carries the load
average at its start and its end: a figure is only comparable with one taken under a similar
load. Use it as::

    figures = Figures("recovery")
    figures.add("controller-leader-kill", samples, meaning="kill to first reconcile")
    figures.value("topology up", 4.2)
    figures.save(repeat=5)  # prints the table, writes the JSON, returns its path

Run as a script, it prints the newest saved file of each benchmark named (default: the fault
catalogue's) as one Markdown table, for a note or an issue::

    python benchmarks/_figures.py recovery catalogue-recovery partition-recovery \
        redis-failover topology
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path("reports/bench")
CATALOGUE = (
    "recovery",
    "catalogue-recovery",
    "partition-recovery",
    "redis-failover",
    "region-outage",
    "topology",
)


@dataclass(frozen=True)
class Distribution:
    """Repeated measurements of one thing: ``n`` samples in ``unit``."""

    name: str
    samples: tuple[float, ...]
    unit: str = "s"
    meaning: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "n": len(self.samples),
            "p50": round(statistics.median(self.samples), 3),
            "max": round(max(self.samples), 3),
            "unit": self.unit,
            "samples": [round(s, 3) for s in self.samples],
            "meaning": self.meaning,
        }


def load_note() -> dict[str, Any]:
    """The machine's load average (1, 5, 15 min) and CPU count, with a sentence saying so."""
    one, five, fifteen = os.getloadavg()
    cpus = os.cpu_count() or 1
    return {
        "loadavg": [round(one, 2), round(five, 2), round(fifteen, 2)],
        "cpus": cpus,
        "at": round(time.time(), 3),
        "note": f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {cpus} CPUs",
    }


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


def start(
    benchmark: str, doc: str | None, *, repeat: int = 5, needs_root: str = ""
) -> tuple[Figures, int] | None:
    """Read ``--repeat`` and ``--out`` from the command line; the run's Figures and repeat.

    ``needs_root``: why the benchmark needs root; without it, say so and return None (the
    caller exits 0: a skipped benchmark is not a failure of ``make bench-*``).
    """
    parser = argparse.ArgumentParser(description=(doc or benchmark).split("\n")[0])
    parser.add_argument("--repeat", type=int, default=repeat)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if needs_root and os.geteuid() != 0:
        print(f"{benchmark}: skipped, {needs_root} (run as root)")
        return None
    return Figures(benchmark, out=args.out), int(args.repeat)


@dataclass
class Figures:
    """The figures of one benchmark run, saved and printed together by :meth:`save`."""

    benchmark: str
    out: Path = OUT
    run_id: str = field(default_factory=new_run_id)
    load_at_start: dict[str, Any] = field(default_factory=load_note)
    distributions: list[Distribution] = field(default_factory=list)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        """A directory for this run's target (logs, configs), under ``out``."""
        return (self.out / f"{self.benchmark}-{self.run_id}").resolve()

    def add(
        self, name: str, samples: list[float], *, unit: str = "s", meaning: str = ""
    ) -> Distribution:
        if not samples:
            raise ValueError(f"{self.benchmark}: no samples for {name!r}")
        dist = Distribution(name, tuple(samples), unit, meaning)
        self.distributions.append(dist)
        return dist

    def value(self, name: str, value: float, *, unit: str = "s", meaning: str = "") -> None:
        """One measurement that is not repeated (a topology's time up, say)."""
        self.values[name] = {"value": round(value, 3), "unit": unit, "meaning": meaning}

    def as_json(self, **extra: Any) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "run_id": self.run_id,
            "load_at_start": self.load_at_start,
            "load_at_end": load_note(),
            **extra,
            "distributions": {d.name: d.as_json() for d in self.distributions},
            "values": self.values,
        }

    def save(self, **extra: Any) -> Path:
        """Write the JSON (``extra`` goes in as top-level keys), print the table, return path."""
        data = self.as_json(**extra)
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{self.benchmark}-{self.run_id}.json"
        path.write_text(json.dumps(data, indent=2))
        print(render(data))
        print(f"saved {path}")
        return path


def render(data: dict[str, Any]) -> str:
    """One benchmark's saved figures as aligned plain text."""
    lines = [f"{data['benchmark']} ({data['run_id']})"]
    for name, d in data.get("distributions", {}).items():
        lines.append(
            f"  {name:40} n {d['n']:2}  p50 {d['p50']:9.3f}  max {d['max']:9.3f} {d['unit']:3}"
            f"  {d['samples']}"
        )
    for name, v in data.get("values", {}).items():
        lines.append(f"  {name:40} {v['value']:9.3f} {v['unit']}")
    start, end = data["load_at_start"]["note"], data["load_at_end"]["note"]
    lines.append(f"  {start} at the start, {end.removeprefix('load average ')} at the end")
    return "\n".join(lines)


def markdown(runs: list[dict[str, Any]]) -> str:
    """Several benchmarks' figures as one Markdown table, each with its load note."""
    rows = [
        "| benchmark | figure | n | p50 | max | unit | what it measures | load (1/5/15 min) |",
        "|---|---|---:|---:|---:|---|---|---|",
    ]
    for data in runs:
        load = " ".join(str(x) for x in data["load_at_start"]["loadavg"])
        for name, d in data.get("distributions", {}).items():
            rows.append(
                f"| {data['benchmark']} | {name} | {d['n']} | {d['p50']:g} | {d['max']:g} "
                f"| {d['unit']} | {d['meaning']} | {load} |"
            )
        for name, v in data.get("values", {}).items():
            rows.append(
                f"| {data['benchmark']} | {name} | 1 | {v['value']:g} | {v['value']:g} "
                f"| {v['unit']} | {v['meaning']} | {load} |"
            )
    return "\n".join(rows)


def newest(benchmark: str, out: Path = OUT) -> dict[str, Any] | None:
    """The newest saved figures of ``benchmark`` in ``out`` (None when there are none)."""
    files = sorted(out.glob(f"{benchmark}-2*.json"))
    for path in reversed(files):
        data: dict[str, Any] = json.loads(path.read_text())
        if data.get("benchmark") == benchmark and "distributions" in data:
            return data
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description="Print saved benchmark figures as Markdown.")
    parser.add_argument("benchmarks", nargs="*", default=list(CATALOGUE))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    runs, missing = [], []
    for name in args.benchmarks:
        data = newest(name, args.out)
        if data is None:
            missing.append(name)
        else:
            runs.append(data)
    print(markdown(runs))
    if missing:
        print(f"\nno saved figures in {args.out} for: {', '.join(missing)}", file=sys.stderr)
    return 0 if runs else 1


if __name__ == "__main__":
    sys.exit(main())
