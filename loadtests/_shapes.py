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

With ``--shape-servers N`` the shape counts game servers instead of users: the locustfile's
user classes that say ``holds_server = True`` (weight 0, so plain runs leave them out) are the
only ones started, each allocates one session and holds it, so the shape's user count is the
number of allocated game servers it asks for::

    locust -f loadtests/tenant.py --headless --shape ramp --shape-servers 10000 --shape-ramp-s 120

ramps from 0 to 10,000 allocated game servers over 120 s and holds them until ``-t``.

The profiles are pure functions of the seconds since the shape started, so a test can drive
:meth:`HarnessShape.tick` with a fake clock. ``--shape-users`` defaults to ``-u``, the spawn
rate to ``-r`` (else the profile's own), and ``--shape-duration-s`` defaults to ``-t`` (headless
Locust applies ``-t`` only after a shape has ended, so the shape ends the run itself); with
neither, the last level is held until Ctrl-C.
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
        ("servers", int, "game servers held at the peak, one per session-holding user "
                         "(instead of --shape-users; base-users then counts servers too)"),
        ("base-users", int, "ramp: users at the start; spike: users outside the spike"),
        ("spawn-rate", float, "steady: users started per second (default: -r, else all at once)"),
        ("duration-s", float, "seconds until the shape ends the run (default: -t; soak needs one)"),
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


def servers_wanted(options: Any) -> int | None:
    """``--shape-servers`` (None when not given); ShapeError when it clashes with users."""
    servers = getattr(options, "shape_servers", None)
    if servers is None:
        return None
    if getattr(options, "shape_users", None) is not None:
        raise ShapeError("pass --shape-servers or --shape-users, not both")
    if servers < 1:
        raise ShapeError(f"--shape-servers must be 1 or more, got {servers}")
    return int(servers)


def profile_from(options: Any) -> Profile:
    """The profile that ``options`` (Locust's parsed options) ask for; ShapeError if invalid."""
    name = options.shape
    servers = servers_wanted(options)
    users = servers or int(_number(options, "users", options.num_users or 1))
    # Headless Locust (2.47) applies -t only once a shape has ended by itself, so the shape
    # applies it: without --shape-duration-s, the shape ends the run at -t.
    duration_s = _number(options, "duration-s", getattr(options, "run_time", None) or 0)
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
            raise ShapeError("--shape soak needs --shape-duration-s or -t (the soak's length)")
        ramp_s = _number(options, "ramp-s", min(60, duration_s / 10))
        if 2 * ramp_s > duration_s:
            raise ShapeError("--shape-ramp-s must be at most half of --shape-duration-s")
        return Soak(users=users, duration_s=duration_s, ramp_s=max(ramp_s, 1))
    raise ShapeError(f"--shape must be one of {', '.join(SHAPES)}, got {name!r}")


def hold_servers(environment: Any) -> list[type]:
    """Start only the user classes that hold a game server each (``holds_server = True``)."""
    available = environment.available_user_classes or {
        c.__name__: c for c in environment.user_classes
    }
    holders = [c for c in available.values() if getattr(c, "holds_server", False)]
    if not holders:
        raise ShapeError(
            "the locustfile has no user class that holds a game server (holds_server = True); "
            "use --shape-users, or a locustfile such as loadtests/tenant.py"
        )
    for cls in holders:
        cls.weight = max(1, cls.weight)  # weight 0 kept them out of runs without servers
    environment.user_classes[:] = holders
    return holders


def _offer_holders(environment: Any) -> None:
    """Let a worker spawn the server-holding classes too, should its master ask for them."""
    available = environment.available_user_classes or {}
    for cls in available.values():
        if getattr(cls, "holds_server", False) and cls not in environment.user_classes:
            environment.user_classes.append(cls)


@events.init.add_listener
def _select_shape(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:  # imported by a test, not started by Locust's command line
        return
    shape = environment.shape_class
    if getattr(options, "worker", False):
        _offer_holders(environment)  # the master decides; a worker spawns what it is sent
        return
    if getattr(options, "shape_servers", None) is not None and not options.shape:
        raise SystemExit("--shape-servers needs a shape: add --shape ramp (or steady, spike, soak)")
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
        if servers_wanted(options) is not None:
            holders = hold_servers(environment)
            log.info("each user holds one game server: %s", ", ".join(c.__name__ for c in holders))
    except ShapeError as exc:
        raise SystemExit(f"--shape {options.shape}: {exc}") from None
    log.info("load shape %s: %s", options.shape, shape.profile)
