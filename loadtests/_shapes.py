"""Load shapes chosen by option: steady, ramp, spike and soak, as a Locust plugin module.

Locust takes the first ``LoadTestShape`` subclass it finds in a locustfile's namespace and
creates it while importing the file, before any option is parsed, and then ignores ``-u``,
``-r`` and ``-t``'s users. So a locustfile imports exactly one shape, the configurable
:class:`HarnessShape`::

    from _shapes import HarnessShape  # noqa: F401  (adds --shape and its parameters)

When Locust starts, this module reads the options and either gives that shape its profile or,
without ``--shape``, removes it, so a run that asks for no shape runs with ``-u``/``-r``
exactly as if the file had none. Parameters come from the command line or the environment
(``LOCUST_SHAPE``, ``LOCUST_SHAPE_USERS``, ...), never from edited constants::

    locust -f loadtests/players.py --headless --shape ramp --shape-users 200 --shape-ramp-s 60

The profiles are pure functions of the seconds since the shape started, so a test can drive
:meth:`HarnessShape.tick` with a fake clock. ``--shape-users`` defaults to ``-u``, the spawn
rate to ``-r`` (else the profile's own), and ``--shape-duration-s`` of 0 holds the last level
until ``-t`` or Ctrl-C stops the run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from locust import LoadTestShape, events

log = logging.getLogger(__name__)

Tick = tuple[int, float]


class Profile(Protocol):
    """Users wanted ``t`` seconds into the run, with the spawn rate; None ends the run."""

    def at(self, t: float) -> Tick | None: ...


def _over(t: float, duration_s: float) -> bool:
    return duration_s > 0 and t >= duration_s


@dataclass(frozen=True)
class Steady:
    """``users`` from the start (spawned at ``spawn_rate``) until ``duration_s``."""

    users: int
    spawn_rate: float
    duration_s: float = 0.0

    def at(self, t: float) -> Tick | None:
        return None if _over(t, self.duration_s) else (self.users, self.spawn_rate)


@dataclass(frozen=True)
class Ramp:
    """From ``base`` to ``users`` in a straight line over ``ramp_s``, then held."""

    users: int
    ramp_s: float
    base: int = 0
    duration_s: float = 0.0

    def at(self, t: float) -> Tick | None:
        if _over(t, self.duration_s):
            return None
        rate = max(1.0, 2 * abs(self.users - self.base) / self.ramp_s)
        if t >= self.ramp_s:
            return self.users, rate
        return self.base + int((self.users - self.base) * t / self.ramp_s), rate


@dataclass(frozen=True)
class Spike:
    """``base`` users, jumping to ``users`` at ``spike_at_s`` for ``spike_s``, then back."""

    users: int
    base: int
    spike_at_s: float
    spike_s: float
    duration_s: float = 0.0

    def at(self, t: float) -> Tick | None:
        if _over(t, self.duration_s):
            return None
        # The jump should land within a tick or two: spawn (or stop) the difference at once.
        rate = float(max(1, self.users - self.base))
        if self.spike_at_s <= t < self.spike_at_s + self.spike_s:
            return self.users, rate
        return self.base, rate


@dataclass(frozen=True)
class Soak:
    """Up to ``users`` over ``ramp_s``, held, and down to none over the last ``ramp_s``."""

    users: int
    duration_s: float
    ramp_s: float

    def at(self, t: float) -> Tick | None:
        if t >= self.duration_s:
            return None
        rate = max(1.0, 2 * self.users / self.ramp_s)
        edge = min(t, self.duration_s - t)
        if edge >= self.ramp_s:
            return self.users, rate
        return int(self.users * edge / self.ramp_s), rate


class HarnessShape(LoadTestShape):  # type: ignore[misc]
    """The one shape a locustfile imports; its profile comes from ``--shape`` (see module)."""

    use_common_options = True  # -u/-r/-t are read (as defaults), so Locust must not drop them

    def __init__(
        self, profile: Profile | None = None, *, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.profile = profile
        self._clock = clock
        super().__init__()
        self.start_time = clock()

    def reset_time(self) -> None:
        self.start_time = self._clock()

    def get_run_time(self) -> float:
        return self._clock() - self.start_time

    def tick(self) -> Tick | None:
        if self.profile is None:
            log.error("HarnessShape has no profile: pass --shape (steady, ramp, spike or soak)")
            return None
        return self.profile.at(self.get_run_time())


SHAPES = ("steady", "ramp", "spike", "soak")


class ShapeError(ValueError):
    """The shape options do not make a valid profile (the message names the option)."""


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("load shape (loadtests/_shapes.py)")
    group.add_argument(
        "--shape", default="", choices=("", *SHAPES), env_var="LOCUST_SHAPE",
        help="load shape; none (the default) runs -u users at -r like plain Locust",
    )  # fmt: skip
    numbers: list[tuple[str, type, str]] = [
        ("users", int, "users at the shape's peak (default: -u)"),
        ("base-users", int, "ramp: users at the start; spike: users outside the spike"),
        ("spawn-rate", float, "steady: users started per second (default: -r, else all at once)"),
        ("duration-s", float, "seconds until the shape ends the run (0: until -t; soak needs it)"),
        ("ramp-s", float, "ramp: seconds to reach --shape-users; soak: seconds up and down"),
        ("spike-at-s", float, "spike: seconds into the run when the spike starts"),
        ("spike-s", float, "spike: seconds the spike lasts"),
    ]  # fmt: skip
    for name, kind, text in numbers:
        env = "LOCUST_SHAPE_" + name.upper().replace("-", "_")
        group.add_argument(f"--shape-{name}", type=kind, default=None, env_var=env, help=text)


def _number(options: Any, name: str, default: float) -> float:
    value = getattr(options, f"shape_{name.replace('-', '_')}", None)
    value = default if value is None else value
    if value < 0:
        raise ShapeError(f"--shape-{name} must be 0 or more, got {value:g}")
    return float(value)


def profile_from(options: Any) -> Profile:
    """The profile that ``options`` (Locust's parsed options) ask for; ShapeError if invalid."""
    name = options.shape
    users = int(_number(options, "users", options.num_users or 1))
    duration_s = _number(options, "duration-s", 0)
    if name == "steady":
        rate = _number(options, "spawn-rate", options.spawn_rate or max(1, users))
        return Steady(users=users, spawn_rate=max(rate, 0.01), duration_s=duration_s)
    if name == "ramp":
        ramp_s = _number(options, "ramp-s", 60)
        base = int(_number(options, "base-users", 0))
        return Ramp(users=users, ramp_s=max(ramp_s, 1), base=base, duration_s=duration_s)
    if name == "spike":
        base = int(_number(options, "base-users", math.ceil(users / 10)))
        spike_s = _number(options, "spike-s", 10)
        at_s = _number(options, "spike-at-s", 10)
        return Spike(
            users=users, base=base, spike_at_s=at_s, spike_s=spike_s, duration_s=duration_s
        )
    if name == "soak":
        if duration_s <= 0:
            raise ShapeError("--shape soak needs --shape-duration-s (the soak's length)")
        ramp_s = _number(options, "ramp-s", min(60, duration_s / 10))
        if 2 * ramp_s > duration_s:
            raise ShapeError("--shape-ramp-s must be at most half of --shape-duration-s")
        return Soak(users=users, duration_s=duration_s, ramp_s=max(ramp_s, 1))
    raise ShapeError(f"--shape must be one of {', '.join(SHAPES)}, got {name!r}")


@events.init.add_listener
def _select_shape(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:  # imported by a test, not started by Locust's command line
        return
    shape = environment.shape_class
    if not options.shape:
        if isinstance(shape, HarnessShape):
            environment.shape_class = None  # plain -u/-r run, as if the file had no shape
        return
    if not isinstance(shape, HarnessShape):
        raise SystemExit(
            f"--shape {options.shape}: the locustfile does not import HarnessShape; add "
            "`from _shapes import HarnessShape  # noqa: F401` to it"
        )
    try:
        shape.profile = profile_from(options)
    except ShapeError as exc:
        raise SystemExit(f"--shape {options.shape}: {exc}") from None
    log.info("load shape %s: %s", options.shape, shape.profile)
