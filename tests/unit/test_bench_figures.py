"""The benchmarks' shared figures (benchmarks/_figures.py): distributions saved with the load."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import REPO_ROOT


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_figures", REPO_ROOT / "benchmarks/_figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_figures", module)
    spec.loader.exec_module(module)
    return module


figures_module: Any = _load()


def test_a_distribution_has_its_count_median_maximum_and_unit() -> None:
    dist = figures_module.Distribution("kill", (3.0, 1.0, 2.0, 10.0), unit="s", meaning="m")

    assert {
        "n": 4,
        "p50": 2.5,
        "max": 10.0,
        "unit": "s",
        "samples": [3.0, 1.0, 2.0, 10.0],
        "meaning": "m",
    } == dist.as_json()


def test_saved_figures_carry_the_load_at_start_and_end_and_print_a_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    figures = figures_module.Figures("demo", out=tmp_path)
    figures.add("storm refused", [0.0, 2.0, 1.0], unit="req", meaning="refused requests")
    figures.value("topology up", 12.3456)

    path = figures.save(repeat=3)

    data = json.loads(path.read_text())
    assert (f"demo-{figures.run_id}.json", 3) == (path.name, data["repeat"])
    assert {"n": 3, "p50": 1.0, "max": 2.0, "unit": "req"}.items() <= data["distributions"][
        "storm refused"
    ].items()
    assert {"value": 12.346, "unit": "s", "meaning": ""} == data["values"]["topology up"]
    assert {"loadavg", "cpus", "note"} <= data["load_at_start"].keys() & data["load_at_end"].keys()
    printed = capsys.readouterr().out
    assert "storm refused" in printed and "load average" in printed


def test_the_markdown_table_takes_the_newest_figures_of_each_benchmark(tmp_path: Path) -> None:
    older = figures_module.Figures("demo", out=tmp_path, run_id="20260101-000000-aaaa")
    older.add("kill", [9.0])
    older.save()
    newer = figures_module.Figures("demo", out=tmp_path, run_id="20260102-000000-bbbb")
    newer.add("kill", [1.0, 3.0])
    newer.save()

    table = figures_module.markdown([figures_module.newest("demo", tmp_path)])

    assert "| demo | kill | 2 | 2 | 3 | s |" in table
    assert figures_module.newest("other", tmp_path) is None
