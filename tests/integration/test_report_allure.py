"""Allure end to end: `harness report`, `make report`'s script with the real Allure 3 CLI from
npm, and the plugin's steps for run_chaos (real Chaos Toolkit) and run_load (real Locust)."""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.model import Verdict
from tests.conftest import REPO_ROOT
from tests.integration.conftest import run_harness
from tests.unit.test_pytest_plugin import INNER_INI
from tests.unit.test_report_allure import (
    JOURNAL,
    PNG_MAGIC,
    attachment,
    make_run,
    read_results,
    write_run_dir,
)

pytestmark = pytest.mark.integration
pytest_plugins = ["pytester"]

SCRIPT = REPO_ROOT / "scripts" / "report.sh"
NO_NODE = "Node.js and npm are not on PATH: `make report` cannot run the Allure CLI here"


def report_script(run_dir: Path, *, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUN": str(run_dir)}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        ["/bin/bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=900
    )


@pytest.fixture
def node() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip(NO_NODE)


def test_harness_report_renders_the_allure_results_and_the_page_again(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path, make_run())
    out = run_dir / "custom-results"
    result = run_harness("report", str(run_dir), "--allure-results", str(out))
    assert 0 == result.returncode, result.stderr
    assert 1 == len(read_results(out))
    assert "20260101-000000-abcd" in (run_dir / "report.html").read_text()
    assert f"allure results: {out}" in result.stdout


def test_harness_report_without_run_json_exits_3_naming_the_directory(tmp_path: Path) -> None:
    result = run_harness("report", str(tmp_path))
    assert 3 == result.returncode
    assert f"{tmp_path}: no run.json here" in result.stderr
    assert not list(tmp_path.iterdir())


def embedded(index: Path) -> dict[str, bytes]:
    """The files a single-file Allure report carries inside its index.html, by path."""
    pairs = re.findall(r'd\("([^"]+)","([A-Za-z0-9+/=]*)"\)', index.read_text())
    return {path: base64.b64decode(body) for path, body in pairs}


@pytest.mark.usefixtures("node")
def test_make_reports_script_writes_one_allure_html_file_with_the_run_and_its_steps(
    tmp_path: Path,
) -> None:
    run_dir = write_run_dir(tmp_path / "run", make_run(Verdict.FAIL))
    result = report_script(run_dir)
    assert 0 == result.returncode, result.stderr
    index = run_dir / "allure-report" / "index.html"
    assert str(index) == result.stdout.strip().splitlines()[-1]
    summary = json.loads((run_dir / "allure-report" / "summary.json").read_text())
    assert "smoke · run 20260101-000000-abcd" == summary["name"]
    assert {"total": 1, "failed": 1} == summary["stats"]
    files = embedded(index)
    [test] = [json.loads(body) for path, body in files.items() if "test-results/" in path]
    assert ("smoke", "failed") == (test["name"], test["status"])
    names = [step.get("name") for step in test["steps"]]
    assert ["phase deploy", "phase warm-up", "phase baseline"] == names[:3]
    assert "SLO api-availability: 98.000 % (≥ 99.900 %)" in names
    attachments = [body for path, body in files.items() if path.startswith("data/attachments/")]
    assert 3 == sum(body.startswith(PNG_MAGIC) for body in attachments)
    assert JOURNAL in [json.loads(body) for body in attachments if body.startswith(b"{")]


def test_make_reports_script_without_node_says_what_to_install(tmp_path: Path) -> None:
    run_dir = write_run_dir(tmp_path, make_run())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "bash"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    result = report_script(run_dir, path=str(bin_dir))
    assert 1 == result.returncode
    assert "Node.js and npm are needed" in result.stderr
    assert "apt-get install nodejs npm" in result.stderr
    assert not (run_dir / "allure-report").exists()


EXPERIMENT = """
version: 1.0.0
title: A probe that always holds
description: No fault at all; the journal is what the test is about.
method:
  - type: probe
    name: the-rootdir-exists
    provider: {type: python, module: os.path, func: exists, arguments: {path: "."}}
"""

LOCUSTFILE = """
from locust import HttpUser, constant, events, task


@events.init_command_line_parser.add_listener
def _add_arguments(parser):
    parser.add_argument("--harness-target-file", default="")
    parser.add_argument("--harness-stats-file", default="")


class Reader(HttpUser):
    wait_time = constant(0.2)

    @task
    def index(self):
        self.client.get("/")
"""

PROFILE = """
name: mini
load: {locustfile: reader.py, users: 1, spawn_rate: 1}
experiments: [noop.yaml]
slos: slos.yaml
"""

ACTION_TEST = """
def test_actions(run_chaos, run_load):
    assert "completed" == run_chaos("noop.yaml").status
    assert 0 < run_load(2, users=2, spawn_rate=2, locustfile="reader.py").requests
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_url(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on a free loopback port, serving an empty directory."""
    served = tmp_path / "served"
    served.mkdir()
    handler = lambda *a: _Quiet(*a, directory=str(served))  # noqa: E731
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join(timeout=10)


def test_run_chaos_and_run_load_record_allure_steps_with_journal_and_locust_stats(
    pytester: pytest.Pytester, http_url: str
) -> None:
    from harness.model import Endpoints

    pytester.makeini(INNER_INI)
    pytester.path.joinpath("noop.yaml").write_text(EXPERIMENT)
    pytester.path.joinpath("profiles").mkdir()
    pytester.path.joinpath("profiles", "mini.yaml").write_text(PROFILE)
    pytester.path.joinpath("reader.py").write_text(LOCUSTFILE)
    pytester.makepyfile(ACTION_TEST)
    pytester.path.joinpath("slos.yaml").write_text("slos: []\n")
    target = pytester.path / "target.json"
    Endpoints(
        run_id="fake", target="local", run_dir=str(pytester.path), api_url=http_url,
        admin_token_file=str(pytester.path / "admin-token"), redis_url="redis://127.0.0.1:9/0",
        prometheus_url="http://127.0.0.1:9", timeline_file=str(pytester.path / "timeline.jsonl"),
    ).write(target)  # fmt: skip
    out = pytester.path / "allure-results"
    result = pytester.runpytest_subprocess(
        f"--harness-target-file={target}",
        "--harness-profile=mini",
        f"--alluredir={out}",
        timeout=300,
    )
    result.assert_outcomes(passed=1)
    [test] = read_results(out)
    chaos, load = test["steps"]
    assert ("run_chaos noop", "passed") == (chaos["name"], chaos["status"])
    journal = json.loads(attachment(out, chaos, "Chaos Toolkit journal (noop)"))
    assert "completed" == journal["status"]
    assert "run_load 2 s, 2 users, reader.py" == load["name"]
    table = attachment(out, load, "Locust statistics").decode().splitlines()
    assert "name,requests,failures,p50_ms,p99_ms,rps" == table[0]
    assert table[1].startswith("all,")
    stats = json.loads(attachment(out, load, "locust-stats.json"))
    assert ["/"] == [entry["name"] for entry in stats]
