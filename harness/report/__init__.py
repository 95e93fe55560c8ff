"""Reports rendered from a RunRecord: run.json (the source of truth), JUnit XML, a text table
a self-contained HTML page and Allure results."""

from harness.report._allure import write_allure_results
from harness.report._history import compare_with_history, history_table
from harness.report._html import render_html, write_html
from harness.report._junit import junit_tree, write_junit
from harness.report._progress import NullProgress, Progress, ProgressSink
from harness.report._runjson import (
    SCHEMA_VERSION,
    FaultJson,
    LoadJson,
    PhaseJson,
    RunJson,
    SloJson,
    WindowJson,
    load_run_record,
    read_run_json,
    run_to_json,
    write_run_json,
)
from harness.report._table import render_table

__all__ = [
    "SCHEMA_VERSION",
    "FaultJson",
    "LoadJson",
    "NullProgress",
    "PhaseJson",
    "Progress",
    "ProgressSink",
    "RunJson",
    "SloJson",
    "WindowJson",
    "compare_with_history",
    "history_table",
    "junit_tree",
    "load_run_record",
    "read_run_json",
    "render_html",
    "render_table",
    "run_to_json",
    "write_allure_results",
    "write_html",
    "write_junit",
    "write_run_json",
]
