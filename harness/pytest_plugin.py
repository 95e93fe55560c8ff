"""pytest plugin of the harness, registered through the ``pytest11`` entry point.

For now it registers the harness's markers so that users' certification suites can use them
with ``--strict-markers``; fixtures for targets, load and chaos come with the plugin's issue.
"""

from __future__ import annotations

import pytest

MARKERS = {
    "slo": "a test that judges a service level objective",
    "chaos": "a test that injects faults",
    "load": "a test that drives load",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
