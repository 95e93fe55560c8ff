from __future__ import annotations

from harness.drivers.locust import LocustRun, LocustSpec, summarize, summarize_window
from harness.model import LoadSummary


def _entry(name: str, times: dict[str, int], failures: int = 0) -> dict[str, object]:
    return {
        "name": name,
        "method": "GET",
        "num_requests": sum(times.values()),
        "num_failures": failures,
        "response_times": times,
        "start_time": 100.0,
        "last_request_timestamp": 110.0,
    }


def test_percentiles_are_exact_over_the_merged_histograms() -> None:
    summary = summarize([_entry("/a", {"10": 98}), _entry("/b", {"10": 1, "400": 1}, failures=1)])
    assert 100 == summary.requests
    assert 1 == summary.failures
    assert 10.0 == summary.p50_ms
    assert 10.0 == summary.p99_ms  # the 99th of 100 samples is still 10 ms
    assert 10.0 == summary.rps


def test_the_slowest_sample_decides_the_p99_when_it_is_one_percent() -> None:
    summary = summarize([_entry("/a", {"10": 97, "400": 3})])
    assert 400.0 == summary.p99_ms


def test_no_requests_gives_no_percentiles() -> None:
    assert LoadSummary(requests=0, failures=0, p50_ms=None, p99_ms=None, rps=None) == summarize([])


def test_locust_is_bounded_by_its_own_run_time(tmp_path) -> None:  # type: ignore[no-untyped-def]
    spec = LocustSpec(
        locustfile=tmp_path / "f.py",
        host="http://127.0.0.1:1",
        users=2,
        spawn_rate=1,
        max_runtime_s=42,
    )
    argv = LocustRun(spec, out_dir=tmp_path, env={}).argv()
    assert "42s" == argv[argv.index("-t") + 1]
    assert "--headless" in argv


def test_a_window_takes_only_the_seconds_inside_it() -> None:
    seconds = {
        "100": {"GET /a": {"n": 2, "f": 0, "rt": {"10": 2}}},
        "101": {"GET /a": {"n": 1, "f": 1, "rt": {"30": 1}}},
        "102": {"GET /b": {"n": 5, "f": 0, "rt": {"5": 5}}},
    }
    first = summarize_window(seconds, 100.0, 102.0)
    assert (3, 1, {"GET /a"}) == (first.requests, first.failures, set(first.by_name))
    assert 30.0 == first.p99_ms
    second = summarize_window(seconds, 102.0, 103.0)
    assert (5, {"GET /b"}) == (second.requests, set(second.by_name))


def test_an_empty_window_has_no_requests() -> None:
    assert (
        0 == summarize_window({"100": {"GET /a": {"n": 1, "f": 0, "rt": {"1": 1}}}}, 0, 50).requests
    )


def test_response_times_written_as_floats_are_read() -> None:
    seconds = {"100": {"GET /a": {"n": 2, "f": 0, "rt": {"250.0": 1, "1100.0": 1}}}}
    assert 1100.0 == summarize_window(seconds, 100.0, 101.0).p99_ms
