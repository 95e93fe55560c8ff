"""Overrides from the ``HARNESS_*`` environment and from ``key.path=value`` command-line flags.

Both name a path in the settings tree and carry a value parsed as a YAML scalar (``1`` is an
integer, ``true`` a boolean, ``[a, b]`` a list). The environment is passed in: nothing here
reads ``os.environ``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import yaml

ENV_PREFIX = "HARNESS_"
# Read by the content (experiments, locustfiles) under plain upstream tools, not settings.
RESERVED_ENV = frozenset({"HARNESS_TARGET_FILE"})


@dataclass(frozen=True)
class Override:
    """One value set on top of the profile, and where the user wrote it."""

    path: tuple[str, ...]
    value: object
    origin: str


def env_overrides(env: Mapping[str, str]) -> tuple[list[Override], list[str]]:
    """Return the overrides in ``HARNESS_SECTION__KEY=value`` variables, and the problems."""
    found: list[Override] = []
    problems: list[str] = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        origin = f"environment variable {name}"
        path = tuple(name[len(ENV_PREFIX) :].lower().split("__"))
        if not all(path):
            problems.append(
                f"{origin}: cannot tell which setting it names; write HARNESS_SECTION__KEY, "
                "with a double underscore between levels (HARNESS_TOPOLOGY__API_REPLICAS)."
            )
            continue
        _parse(env[name], path=path, origin=origin, found=found, problems=problems)
    return found, problems


def flag_overrides(flags: Sequence[str]) -> tuple[list[Override], list[str]]:
    """Return the overrides in ``section.key=value`` flags, and the problems."""
    found: list[Override] = []
    problems: list[str] = []
    for flag in flags:
        origin = f"command-line override '{flag}'"
        key, sep, text = flag.partition("=")
        path = tuple(part.strip() for part in key.split("."))
        if not sep or not all(path):
            problems.append(
                f"{origin}: expected 'section.key=value' (for example "
                "'topology.controller_replicas=1'); rewrite the flag."
            )
            continue
        _parse(text, path=path, origin=origin, found=found, problems=problems)
    return found, problems


def _parse(
    text: str, *, path: tuple[str, ...], origin: str, found: list[Override], problems: list[str]
) -> None:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problems.append(
            f"{origin}: the value {text!r} is not a valid YAML scalar ({_reason(exc)}); "
            "quote it or fix it."
        )
        return
    found.append(Override(path=path, value=value, origin=origin))


def _reason(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        return exc.problem
    return type(exc).__name__
