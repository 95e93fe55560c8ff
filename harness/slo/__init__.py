"""SLO evaluation: load SLO files, measure through the PromQuery seam, judge (a pure function)."""

from harness.slo._file import load_slo_file
from harness.slo._judge import Measurement, format_value, judge
from harness.slo._live import LiveIndicators
from harness.slo._measure import Scope, evaluate_slos, measure, scopes
from harness.slo._mttr import is_distribution
from harness.slo._precheck import metric_alternatives, metric_names, unknown_metric_problems
from harness.slo._promql import promql_problems, range_text, render
from harness.slo._query import PromQuery, Sample, Series
from harness.slo._spec import (
    Comparator,
    Healthy,
    Indicator,
    IndicatorKind,
    Severity,
    SloSpec,
    Statistic,
)

__all__ = [
    "Comparator",
    "Healthy",
    "Indicator",
    "IndicatorKind",
    "LiveIndicators",
    "Measurement",
    "PromQuery",
    "Sample",
    "Scope",
    "Series",
    "Severity",
    "SloSpec",
    "Statistic",
    "evaluate_slos",
    "format_value",
    "is_distribution",
    "judge",
    "load_slo_file",
    "measure",
    "metric_alternatives",
    "metric_names",
    "promql_problems",
    "range_text",
    "render",
    "scopes",
    "unknown_metric_problems",
]
