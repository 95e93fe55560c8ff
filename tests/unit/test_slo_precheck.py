"""Reading the metric names of PromQL expressions, and reporting the unknown ones by SLO."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.drivers.prometheus import family_series
from harness.slo import (
    Comparator,
    Indicator,
    IndicatorKind,
    SloSpec,
    load_slo_file,
    metric_alternatives,
    metric_names,
    unknown_metric_problems,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("promql", "expected"),
    [
        pytest.param("up", {"up"}, id="bare-name"),
        pytest.param('up{job="api"}', {"up"}, id="with-matchers"),
        pytest.param(
            "histogram_quantile(0.99, sum by (le) "
            "(increase(refplat_api_request_duration_seconds_bucket[$window])))",
            {"refplat_api_request_duration_seconds_bucket"},
            id="histogram-quantile-sum-by-le",
        ),
        pytest.param(
            "histogram_quantile(0.99, sum(rate(x_bucket[5m])) by (le, route))",
            {"x_bucket"},
            id="by-after-the-aggregation",
        ),
        pytest.param(
            "max(refplat_controller_leader_first_reconcile_timestamp_seconds) or vector(0)",
            {"refplat_controller_leader_first_reconcile_timestamp_seconds"},
            id="or-vector-0",
        ),
        pytest.param(
            'sum(increase(refplat_api_requests_total{code!~"5.."}[$window])) '
            "/ sum(increase(refplat_api_requests_total[$window]))",
            {"refplat_api_requests_total"},
            id="ratio-with-regex-matcher",
        ),
        pytest.param(
            'sum(sum_over_time(probe_success{job="probe-api"}[62s]))',
            {"probe_success"},
            id="probe-uptime",
        ),
        pytest.param(
            "rate(errors_total[5m]) > bool 0.1 and on(instance) up == 1",
            {"errors_total", "up"},
            id="bool-and-on",
        ),
        pytest.param(
            "a * on(job, instance) group_left(version, region) b_info",
            {"a", "b_info"},
            id="group-left-label-list",
        ),
        pytest.param(
            "a / ignoring(code) group_right b",
            {"a", "b"},
            id="group-right-without-labels",
        ),
        pytest.param("a unless b", {"a", "b"}, id="unless"),
        pytest.param(
            "sum without (instance, pod) (rate(c_total[1m]))",
            {"c_total"},
            id="without",
        ),
        pytest.param("rate(c_total[5m] offset 1h)", {"c_total"}, id="offset"),
        pytest.param("c_total offset -5m30s", {"c_total"}, id="negative-compound-offset"),
        pytest.param("rate(c_total[5m] @ 1609746000)", {"c_total"}, id="at-timestamp"),
        pytest.param("c_total @ end() - c_total @ start()", {"c_total"}, id="at-start-end"),
        pytest.param(
            "max_over_time(rate(c_total[1m])[$window:10s])",
            {"c_total"},
            id="subquery-with-window",
        ),
        pytest.param("min_over_time(g[1h:])", {"g"}, id="subquery-default-step"),
        pytest.param('{__name__="x_total", job="a"}', {"x_total"}, id="name-label"),
        pytest.param("{__name__ = 'y'}", {"y"}, id="name-label-single-quotes"),
        pytest.param('{__name__=~"x.*"}', set(), id="name-regex-selects-no-known-name"),
        pytest.param('{"my.dotted.metric", job="a"}', {"my.dotted.metric"}, id="quoted-name"),
        pytest.param(
            'label_replace(up, "dst", "$1", "src", "(rate|sum)(.*)")',
            {"up"},
            id="strings-are-skipped",
        ),
        pytest.param('count_values("version", build_info)', {"build_info"}, id="count-values"),
        pytest.param("topk(5, sum by (route) (rate(r_total[1m])))", {"r_total"}, id="topk"),
        pytest.param(
            "quantile(0.9, g) > 1.5e-3 or g < 0x1F or g > Inf or g != NaN",
            {"g"},
            id="numbers-hex-exponent-inf-nan",
        ),
        pytest.param("SUM BY (le) (x_bucket)", {"x_bucket"}, id="upper-case-keywords"),
        pytest.param("job:api_requests:rate5m", {"job:api_requests:rate5m"}, id="recording-rule"),
        pytest.param(
            "time() - process_start_time_seconds", {"process_start_time_seconds"}, id="time"
        ),
        pytest.param("vector(1)", set(), id="no-metric"),
        pytest.param('absent(up{job="x"})', {"up"}, id="absent"),
        pytest.param(
            "# the ratio\nsum(a_total) # numerator\n/ sum(b_total)",
            {"a_total", "b_total"},
            id="comments",
        ),
        pytest.param(
            'sum(rate(x[5m])) by (le) / on() group_left sum(y{a="}{"})',
            {"x", "y"},
            id="brace-in-string",
        ),
        pytest.param("avg(g) + $window", {"g"}, id="placeholder-outside-a-range"),
        pytest.param("", set(), id="empty"),
    ],
)
def test_metric_names_reads_the_metrics_an_expression_selects(
    promql: str, expected: set[str]
) -> None:
    assert expected == metric_names(promql)


def spec(name: str, indicator: Indicator, source: str = "slos/x.yaml:4") -> SloSpec:
    return SloSpec(
        name=name,
        indicator=indicator,
        objective=0.5,
        comparator=Comparator.LE,
        source=source,
    )


KNOWN = {
    "refplat_api_requests_total",
    "refplat_api_request_duration_seconds_bucket",
    "refplat_controller_leader_first_reconcile_timestamp_seconds",
}


def test_the_smoke_slos_have_no_unknown_metric_when_refplat_exports_its_metrics() -> None:
    specs = load_slo_file(REPO_ROOT / "slos/smoke.yaml")

    assert [] == unknown_metric_problems(specs, KNOWN)


def test_a_misspelt_metric_names_file_line_slo_field_and_a_near_match() -> None:
    latency = Indicator(
        kind=IndicatorKind.THRESHOLD,
        promql="histogram_quantile(0.99, sum by (le) "
        "(increase(refplat_api_request_duration_second_bucket[$window])))",
    )

    problems = unknown_metric_problems([spec("api-latency-p99", latency)], KNOWN)

    assert [
        "slos/x.yaml:4: SLO 'api-latency-p99', field 'indicator.promql': Prometheus has no "
        "series and no metadata for the metric 'refplat_api_request_duration_second_bucket'; "
        "did you mean 'refplat_api_request_duration_seconds_bucket'?"
    ] == problems


@pytest.mark.parametrize(
    ("promql", "expected"),
    [
        pytest.param("a or b", [{"a"}, {"b"}], id="two-alternatives"),
        pytest.param("sum(a or b) OR c * d", [{"a", "b"}, {"c", "d"}], id="only-top-level"),
        pytest.param('x{job="or"} or rate(y[5m])', [{"x"}, {"y"}], id="or-in-a-string"),
        pytest.param("a and b", [{"a", "b"}], id="no-or"),
    ],
)
def test_alternatives_are_the_operands_of_the_top_level_ors(
    promql: str, expected: list[set[str]]
) -> None:
    assert expected == metric_alternatives(promql)


KUBE_POD_STARTUP = "kube-pod-startup-p99"


@pytest.mark.parametrize(
    ("known", "unknown"),
    [
        pytest.param({"kubelet_pod_start_sli_duration_seconds_bucket"}, [], id="kubelets"),
        pytest.param({"scheduler_pod_scheduling_sli_duration_seconds_bucket"}, [], id="kwok"),
        pytest.param(
            set(),
            [
                "kubelet_pod_start_sli_duration_seconds_bucket",
                "scheduler_pod_scheduling_sli_duration_seconds_bucket",
            ],
            id="neither",
        ),
    ],
)
def test_pod_startup_judges_the_kubelets_where_they_report_else_the_scheduler(
    known: set[str], unknown: list[str]
) -> None:
    (startup,) = [
        s for s in load_slo_file(REPO_ROOT / "slos/kube.yaml") if s.name == KUBE_POD_STARTUP
    ]

    problems = unknown_metric_problems([startup], known | {"apiserver_request_duration_seconds"})

    assert unknown == [p.split("metric '")[1].split("'")[0] for p in problems]


def test_each_unknown_metric_of_a_ratio_is_one_problem_naming_its_field() -> None:
    ratio = Indicator(
        kind=IndicatorKind.RATIO,
        good="sum(increase(good_events_total[$window]))",
        total="sum(increase(all_events_total[$window]))"
        " + sum(increase(good_events_total[$window]))",
    )

    problems = unknown_metric_problems([spec("ratio", ratio)], KNOWN)

    assert 3 == len(problems)
    assert "field 'indicator.good'" in problems[0]
    assert "'good_events_total'" in problems[0]
    assert "'all_events_total'" in problems[1]
    assert "check the name, and that its exporter is scraped" in problems[1]
    assert "field 'indicator.total'" in problems[2]


def test_blackbox_and_scrape_metrics_count_as_known_without_series() -> None:
    probes = Indicator(
        kind=IndicatorKind.THRESHOLD,
        promql='max(probe_duration_seconds{job="probe-api"}[$window]) + 0 * sum(up)'
        " + 0 * sum(scrape_duration_seconds) + 0 * min(probe_success)",
    )

    assert [] == unknown_metric_problems([spec("probe-latency", probes)], set())


def test_an_slo_measured_by_the_engine_has_no_query_to_check() -> None:
    preserved = Indicator(kind=IndicatorKind.SESSIONS_PRESERVED)
    uptime = Indicator(kind=IndicatorKind.PROBE_UPTIME, job="probe-api")

    assert [] == unknown_metric_problems(
        [spec("sessions", preserved), spec("uptime", uptime)], set()
    )


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        pytest.param("lat", "histogram", {"lat_bucket", "lat_sum", "lat_count", "lat_created"},
                     id="histogram"),
        pytest.param("q", "summary", {"q", "q_sum", "q_count", "q_created"}, id="summary"),
        pytest.param("jobs", "counter", {"jobs_total", "jobs_created"}, id="openmetrics-counter"),
        pytest.param("jobs_total", "counter", {"jobs_total"}, id="text-format-counter"),
        pytest.param("build", "info", {"build_info"}, id="info"),
        pytest.param("temp", "gauge", {"temp"}, id="gauge"),
        pytest.param("odd", "unknown", {"odd"}, id="untyped"),
    ],
)  # fmt: skip
def test_a_metadata_family_yields_its_series_names(
    name: str, kind: str, expected: set[str]
) -> None:
    assert expected == family_series(name, kind)
