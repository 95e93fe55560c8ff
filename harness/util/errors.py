"""The harness's exception tree. Third-party exceptions are wrapped once, at the driver boundary.

An SLO breach is a result, not an exception: nothing here is raised for a FAIL verdict.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose. Messages are whole sentences."""

    exit_code = 2


class ConfigError(HarnessError):
    """Bad input from the user: a file, flag or setting. Exit code 3; nothing was started.

    ``problems`` holds every problem found, each already formatted as ``file:line: message``.
    """

    exit_code = 3

    def __init__(self, problems: list[str] | str, *, after_start: bool = False) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        # Found only once the target was up (an SLO query's metric unknown to Prometheus): the
        # target was started and torn down, but no load or fault ran.
        self.after_start = after_start
        super().__init__("\n".join(self.problems))


class InfraError(HarnessError):
    """The run itself broke: a process would not start, a port never answered. Exit code 2."""

    exit_code = 2


class DriverError(InfraError):
    """An outside tool (Locust, Chaos Toolkit, Prometheus, Redis, ...) failed."""


class CapabilityMissing(HarnessError):
    """The target cannot do what an experiment needs; the experiment is SKIPPED, not passed."""

    exit_code = 2
