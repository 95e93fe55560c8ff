"""pytest plugin of the harness, registered through the ``pytest11`` entry point.

It loads in every pytest run, so importing it costs nothing: the harness's modules are imported
by the fixtures that need them, and nothing starts unless a test asks for a target.

Options:
    ``--harness-target {local,kube,kind}``  what to deploy (default local; kube and kind skip)
    ``--harness-profile NAME``              profile name or file (default smoke)
    ``--harness-keep``                      leave the deployed target running (``harness down``)
    ``--harness-target-file PATH``          use a running target (``harness up``'s target.json)

Markers: ``slo``, ``chaos``, ``load``.

Fixtures (all session-scoped except the three actions, which note the calling test):
    ``harness_settings``     the run's Settings (the one loader, with the environment)
    ``harness_target_file``  the target's ``target.json``, deploying the target if needed
    ``harness_target``       its Endpoints (``harness_endpoints`` is an alias)
    ``prometheus``           a PrometheusClient on the target's Prometheus (a PromQuery)
    ``run_chaos``            ``run_chaos(experiment) -> ChaosOutcome``
    ``check_slo``            ``check_slo(slo_file_or_name, *, window_s, names=None,
                             external=None) -> tuple[SloResult, ...]``
    ``run_load``             ``run_load(seconds, *, users=None, spawn_rate=None,
                             locustfile=None) -> LoadSummary``

The SLO verdicts gathered by ``check_slo`` are listed at the end of the terminal report. With
allure-pytest's ``--alluredir``, the three actions also record Allure steps: ``run_load`` with
the Locust statistics, ``run_chaos`` with the experiment's journal, ``check_slo`` one step per
SLO with its PromQL query and values, each step's status from its verdict.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from harness.config import Settings
    from harness.drivers.prometheus import PrometheusClient
    from harness.model import Endpoints
    from harness.pytest_plugin._session import (
        CheckSlo,
        HarnessSession,
        RunChaos,
        RunLoad,
        SloRow,
    )
    from harness.slo import PromQuery

MARKERS = {
    "slo": "a test that judges a service level objective",
    "chaos": "a test that injects faults",
    "load": "a test that drives load",
}
TARGETS = ("local", "kube", "kind")  # as harness.targets.TARGETS, not imported to stay cheap
NOT_BUILT = "the kube and kind targets are not built yet"
PROMETHEUS_TIMEOUT_S = 10.0

SLO_ROWS: pytest.StashKey[list[SloRow]] = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "resilience harness (gsharness)")
    group.addoption(
        "--harness-target",
        choices=TARGETS,
        default="local",
        help="target to deploy for the session (default: local; kube and kind are not built)",
    )
    group.addoption(
        "--harness-profile",
        default="smoke",
        help="harness profile name in profiles/ or a YAML file (default: smoke)",
    )
    group.addoption(
        "--harness-keep",
        action="store_true",
        help="leave the deployed target running after the session; stop it with `harness down`",
    )
    group.addoption(
        "--harness-target-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="use the running target this target.json describes (e.g. .harness/target.json "
        "from `harness up`) instead of deploying one (--harness-target is then ignored); "
        "it is never torn down",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    rows = config.stash.get(SLO_ROWS, [])
    if not rows:
        return
    from harness.pytest_plugin._session import summary_lines

    terminalreporter.section("harness SLO verdicts")
    for line in summary_lines(rows):
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def harness_settings(pytestconfig: pytest.Config) -> Settings:
    """The settings of the session's profile: defaults < profile < ``HARNESS_*`` environment."""
    from harness.config import load_settings
    from harness.util.errors import ConfigError

    profile = str(pytestconfig.getoption("harness_profile"))
    try:
        return load_settings(
            profile, repo_root=pytestconfig.rootpath, env=dict(os.environ), overrides=[]
        )
    except ConfigError as exc:
        pytest.fail("harness: configuration error:\n  " + "\n  ".join(exc.problems), False)


@pytest.fixture(scope="session")
def harness_target_file(request: pytest.FixtureRequest) -> Iterator[Path]:
    """The ``target.json`` of the session's target: the one given, or one deployed now.

    A deployed target is torn down at the end of the session unless ``--harness-keep``.
    """
    config = request.config
    given = config.getoption("harness_target_file")
    if given is not None:
        yield Path(given).resolve()
        return
    if config.getoption("harness_target") != "local":
        pytest.skip(NOT_BUILT)
    from harness.pytest_plugin._target import SessionTarget

    settings: Settings = request.getfixturevalue("harness_settings")
    keep = bool(config.getoption("harness_keep"))
    with SessionTarget(settings=settings, root=config.rootpath, keep=keep) as target_file:
        yield target_file


@pytest.fixture(scope="session")
def harness_target(harness_target_file: Path) -> Endpoints:
    """The Endpoints of the session's target (``target.json`` read back)."""
    from harness.model import Endpoints
    from harness.util.errors import ConfigError

    try:
        return Endpoints.read(harness_target_file)
    except ConfigError as exc:
        pytest.fail(str(exc), False)


@pytest.fixture(scope="session")
def harness_endpoints(harness_target: Endpoints) -> Endpoints:
    """Alias of ``harness_target``."""
    return harness_target


@pytest.fixture(scope="session")
def prometheus(harness_target: Endpoints) -> Iterator[PrometheusClient]:
    """A client of the target's Prometheus, closed at the end of the session."""
    from harness.drivers.prometheus import PrometheusClient

    with PrometheusClient(harness_target.prometheus_url, timeout_s=PROMETHEUS_TIMEOUT_S) as prom:
        yield prom


@pytest.fixture(scope="session")
def _harness_session(
    request: pytest.FixtureRequest, harness_target_file: Path, harness_target: Endpoints
) -> HarnessSession:
    from harness.pytest_plugin._session import AllureSteps, HarnessSession, NoSteps

    # With allure-pytest's --alluredir, the three actions record Allure steps and attachments.
    allure_on = request.config.getoption("allure_report_dir", None) is not None
    return HarnessSession(
        root=request.config.rootpath,
        target_file=harness_target_file,
        endpoints=harness_target,
        steps=AllureSteps() if allure_on else NoSteps(),
    )


@pytest.fixture
def run_chaos(_harness_session: HarnessSession) -> RunChaos:
    """``run_chaos(experiment) -> ChaosOutcome``: run a Chaos Toolkit experiment on the target.

    ``experiment`` is a path (relative ones from the rootdir); its journal goes to the run's
    ``chaos/`` folder and its phase and faults to the run's timeline, for ``check_slo``.
    """
    return _harness_session.run_chaos


@pytest.fixture
def check_slo(
    request: pytest.FixtureRequest, _harness_session: HarnessSession, prometheus: PromQuery
) -> CheckSlo:
    """``check_slo(slo_file_or_name, *, window_s, names=None, external=None)``: judge SLOs.

    Evaluates the SLO file (a path, or a name in ``slos/``) against Prometheus over the last
    ``window_s`` seconds, with the faults ``run_chaos`` injected in that window; ``names``
    keeps only those SLOs, ``external`` supplies values the harness measures itself
    (``sessions-preserved``). Returns the results; a breach is a FAIL result, not an error.
    """
    rows = request.config.stash.setdefault(SLO_ROWS, [])
    interval = getattr(prometheus, "scrape_interval_s", None)
    return _harness_session.slo_checker(
        prom=prometheus,
        rows=rows,
        test=request.node.nodeid,
        scrape_interval_s=interval() if callable(interval) else 1.0,
    )


@pytest.fixture
def run_load(request: pytest.FixtureRequest, _harness_session: HarnessSession) -> RunLoad:
    """``run_load(seconds, *, users=None, spawn_rate=None, locustfile=None) -> LoadSummary``.

    Runs headless Locust against the target for ``seconds``; defaults come from the profile.
    """
    settings: Settings = request.getfixturevalue("harness_settings")
    return _harness_session.load_runner(settings)
