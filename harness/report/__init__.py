"""Reports rendered from a RunRecord: run.json (the source of truth), JUnit XML, a text table
and a self-contained HTML page."""

from harness.report._html import render_html, write_html
from harness.report._junit import junit_tree, write_junit
from harness.report._runjson import (
    SCHEMA_VERSION,
    FaultJson,
    LoadJson,
    PhaseJson,
    RunJson,
    SloJson,
    WindowJson,
    read_run_json,
    run_to_json,
    write_run_json,
)
from harness.report._table import render_table

__all__ = [
    "SCHEMA_VERSION",
    "FaultJson",
    "LoadJson",
    "PhaseJson",
    "RunJson",
    "SloJson",
    "WindowJson",
    "junit_tree",
    "read_run_json",
    "render_html",
    "render_table",
    "run_to_json",
    "write_html",
    "write_junit",
    "write_run_json",
]
