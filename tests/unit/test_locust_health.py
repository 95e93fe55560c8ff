"""Reading Locust's processes from the outside: exits, tracebacks, CPU demand, merged seconds."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from harness.drivers._locust_health import (
    CpuWindow,
    cpu_demand_s,
    cpu_warning,
    exit_text,
    traceback_origin,
)
from harness.drivers.locust import LocustRun, LocustSpec, merge_seconds

IMPORT_ERROR = """[2026-11-30 20:35:37,757] vm/INFO/locust.main: Starting Locust 2.47.0
Traceback (most recent call last):
  File "/work/.venv/bin/locust", line 10, in <module>
    sys.exit(main())
  File "/work/.venv/lib/python3.11/site-packages/locust/util/load_locustfile.py", line 71, in x
    loader.exec_module(imported)
  File "<frozen importlib._bootstrap_external>", line 940, in exec_module
  File "/tmp/lf/players.py", line 3, in <module>
    undefined_name + 1
    ^^^^^^^^^^^^^^
NameError: name 'undefined_name' is not defined
"""

SYNTAX_ERROR = """Traceback (most recent call last):
  File "/work/.venv/lib/python3.11/site-packages/locust/main.py", line 141, in merge
    user_classes, shape_classes = load_locustfile(_locustfile)
  File "<frozen importlib._bootstrap>", line 241, in _call_with_frames_removed
  File "/tmp/lf/syn.py", line 2
    class U(User:
                ^
SyntaxError: invalid syntax
"""


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (IMPORT_ERROR, "/tmp/lf/players.py:3: NameError: name 'undefined_name' is not defined"),
        (SYNTAX_ERROR, "/tmp/lf/syn.py:2: SyntaxError: invalid syntax"),
        ("Shutting down (exit code 0)\n", ""),
    ],
    ids=["import-error", "syntax-error", "no-traceback"],
)
def test_the_origin_of_a_locustfile_error_is_its_file_and_line(log: str, expected: str) -> None:
    assert expected == traceback_origin(log)


@pytest.mark.parametrize(
    ("code", "text"),
    [(1, "code 1"), (-signal.SIGKILL, "signal SIGKILL"), (0, "code 0")],
    ids=["error", "killed", "clean"],
)
def test_an_exit_reads_as_a_code_or_a_signal(code: int, text: str) -> None:
    assert text == exit_text(code)


def test_a_cpu_window_gives_a_share_only_once_it_spans_the_window() -> None:
    window = CpuWindow(window_s=10)
    for t in range(10):
        window.add(float(t), t * 0.95)
    assert window.share() is None  # 9 s so far
    window.add(10.0, 9.5)
    assert pytest.approx(0.95) == window.share()
    for t in range(11, 30):
        window.add(float(t), 9.5 + (t - 10) * 0.2)  # the load eased
    assert pytest.approx(0.2) == window.share()
    assert 2 <= len(window.samples) <= 12


def test_cpu_demand_of_this_process_is_read_and_of_a_gone_one_is_none() -> None:
    assert (cpu_demand_s(os.getpid()) or 0.0) > 0.0
    assert cpu_demand_s(2**22 + 1) is None


def test_locusts_cpu_warning_is_found_in_any_log(tmp_path: Path) -> None:
    quiet, hot = tmp_path / "locust.log", tmp_path / "locust-worker-2.log"
    quiet.write_text("all well\n")
    hot.write_text("x\n[...] WARNING/locust.runners: CPU usage above 90%! This may constrain\n")
    found = cpu_warning([quiet, tmp_path / "missing.log", hot])
    assert found.startswith("locust-worker-2.log: [...] WARNING/locust.runners: CPU usage above")
    assert "" == cpu_warning([quiet])


def test_seconds_of_two_workers_add_up() -> None:
    merged: dict[str, dict[str, dict[str, object]]] = {}
    merge_seconds(merged, {"100": {"GET /a": {"n": 2, "f": 1, "rt": {"10": 2}}}})
    merge_seconds(
        merged,
        {
            "100": {"GET /a": {"n": 3, "f": 0, "rt": {"10": 1, "20": 2}}},
            "101": {"GET /b": {"n": 1, "f": 0, "rt": {"5": 1}}},
        },
    )
    assert {
        "100": {"GET /a": {"n": 5, "f": 1, "rt": {"10": 3, "20": 2}}},
        "101": {"GET /b": {"n": 1, "f": 0, "rt": {"5": 1}}},
    } == merged


def spec(tmp_path: Path, **kw: int) -> LocustSpec:
    return LocustSpec(
        locustfile=tmp_path / "f.py",
        host="http://127.0.0.1:1",
        users=2,
        spawn_rate=1,
        max_runtime_s=42,
        **kw,
    )


def test_two_workers_make_a_master_and_two_worker_command_lines(tmp_path: Path) -> None:
    run = LocustRun(spec(tmp_path, workers=2, metrics_port=9646), out_dir=tmp_path, env={})
    master, *workers = (p.argv for p in run.processes)
    assert "--master" in master and "2" == master[master.index("--expect-workers") + 1]
    assert "9646" == master[master.index("--harness-metrics-port") + 1]
    assert "--harness-stats-file" not in master  # the workers make the requests
    assert 2 == len(workers)
    for index, argv in enumerate(workers, start=1):
        assert "--worker" in argv and str(run.master_port) in argv
        assert "--harness-metrics-port" not in argv
        stats = argv[argv.index("--harness-stats-file") + 1]
        assert str(tmp_path / f"per-second-worker-{index}.json") == stats


def test_one_worker_is_one_plain_process(tmp_path: Path) -> None:
    run = LocustRun(spec(tmp_path, workers=1), out_dir=tmp_path, env={})
    (only,) = run.processes
    assert "--master" not in only.argv and "--harness-metrics-port" not in only.argv
    assert str(run.per_second_path) == only.argv[only.argv.index("--harness-stats-file") + 1]
