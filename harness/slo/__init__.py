"""SLO evaluation: load SLO files, measure through the PromQuery seam, judge (a pure function)."""

from harness.slo._file import load_slo_file
from harness.slo._judge import Measurement, format_value, judge
from harness.slo._measure import Scope, evaluate_slos, measure, scopes
from harness.slo._promql import promql_problems, range_text, render
from harness.slo._query import PromQuery, Sample
from harness.slo._spec import Comparator, Indicator, IndicatorKind, Severity, SloSpec

__all__ = [
    "Comparator",
    "Indicator",
    "IndicatorKind",
    "Measurement",
    "PromQuery",
    "Sample",
    "Scope",
    "Severity",
    "SloSpec",
    "evaluate_slos",
    "format_value",
    "judge",
    "load_slo_file",
    "measure",
    "promql_problems",
    "range_text",
    "render",
    "scopes",
]
