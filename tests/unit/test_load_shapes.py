"""Load shapes (loadtests/_shapes.py): users over time, driven through tick() by a fake clock.

Importing Locust patches the process with gevent unless LOCUST_SKIP_MONKEY_PATCH is set, so
the module is imported with it set (and the variable removed again, so that Locust
subprocesses started by later tests are patched as usual).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from tests.conftest import REPO_ROOT


def _load_shapes() -> ModuleType:
    if "_shapes" in sys.modules:
        return sys.modules["_shapes"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCUST_SKIP_MONKEY_PATCH", "1")
        spec = importlib.util.spec_from_file_location("_shapes", REPO_ROOT / "loadtests/_shapes.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["_shapes"] = module
        spec.loader.exec_module(module)
    return module


shapes: Any = _load_shapes()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def users_over_time(profile: Any, seconds: list[float]) -> list[int | None]:
    """The user count the shape asks for at each of ``seconds`` after it started."""
    clock = FakeClock()
    shape = shapes.HarnessShape(profile, clock=clock)
    clock.now += 5  # time before the run starts does not count
    shape.reset_time()
    counts: list[int | None] = []
    start = clock.now
    for t in seconds:
        clock.now = start + t
        tick = shape.tick()
        counts.append(None if tick is None else tick[0])
    return counts


def options(**given: Any) -> SimpleNamespace:
    """Locust's parsed options as far as the shapes read them (None: not given)."""
    names = ["users", "base_users", "spawn_rate", "duration_s", "ramp_s", "spike_at_s", "spike_s"]
    names += ["servers"]
    values: dict[str, Any] = {f"shape_{n}": None for n in names}
    values |= {"shape": "", "num_users": None, "spawn_rate": None}
    return SimpleNamespace(**(values | given))


@pytest.mark.parametrize(
    ("given", "seconds", "expected"),
    [
        (
            {"shape": "steady", "shape_users": 50, "shape_duration_s": 10},
            [0, 5, 9.9, 10],
            [50, 50, 50, None],
        ),
        (
            {"shape": "ramp", "shape_users": 200, "shape_ramp_s": 60},
            [0, 15, 30, 59, 60, 600],
            [0, 50, 100, 196, 200, 200],
        ),
        (
            {"shape": "ramp", "shape_users": 100, "shape_base_users": 20, "shape_ramp_s": 10,
             "shape_duration_s": 20},
            [0, 5, 10, 19, 20],
            [20, 60, 100, 100, None],
        ),
        (
            {"shape": "spike", "shape_users": 100, "shape_spike_at_s": 10, "shape_spike_s": 5},
            [0, 9.9, 10, 14.9, 15, 100],
            [10, 10, 100, 100, 10, 10],
        ),
        (
            {"shape": "soak", "shape_users": 40, "shape_duration_s": 100, "shape_ramp_s": 10},
            [0, 5, 10, 50, 90, 95, 99.9, 100],
            [0, 20, 40, 40, 40, 20, 0, None],
        ),
        (
            {"shape": "steady", "num_users": 7},
            [0, 3600],
            [7, 7],
        ),
    ],
    ids=["steady", "ramp-to-200", "ramp-from-base", "spike", "soak", "steady-from-common-u"],
)  # fmt: skip
def test_each_shape_asks_for_its_users_over_time(
    given: dict[str, Any], seconds: list[float], expected: list[int | None]
) -> None:
    profile = shapes.profile_from(options(**given))

    assert expected == users_over_time(profile, seconds)


def test_a_steady_shape_spawns_at_the_given_rate_or_at_minus_r() -> None:
    explicit = shapes.profile_from(options(shape="steady", shape_users=10, shape_spawn_rate=2.5))
    common = shapes.profile_from(options(shape="steady", shape_users=10, spawn_rate=4))

    assert ((10, 2.5), (10, 4.0)) == (explicit.at(0), common.at(0))


def test_a_ramp_spawns_fast_enough_to_follow_its_line() -> None:
    profile = shapes.profile_from(options(shape="ramp", shape_users=1000, shape_ramp_s=10))

    users, rate = profile.at(5)

    assert (500, True) == (users, rate >= 100)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"shape": "soak", "shape_users": 5}, "--shape-duration-s"),
        ({"shape": "soak", "shape_duration_s": 10, "shape_ramp_s": 6}, "at most half"),
        ({"shape": "ramp", "shape_users": -1}, "--shape-users must be 0 or more"),
        ({"shape": "zigzag"}, "one of steady, ramp, spike, soak"),
        ({"shape": "ramp", "shape_servers": 10, "shape_users": 10}, "not both"),
        ({"shape": "ramp", "shape_servers": 0}, "--shape-servers must be 1 or more"),
    ],
    ids=[
        "soak-without-duration",
        "soak-ramps-too-long",
        "negative-users",
        "unknown",
        "servers-and-users",
        "no-servers",
    ],
)
def test_bad_shape_options_name_the_option(given: dict[str, Any], message: str) -> None:
    with pytest.raises(shapes.ShapeError, match=message):
        shapes.profile_from(options(**given))


def test_without_shape_the_locustfiles_shape_is_removed_so_minus_u_applies() -> None:
    env = SimpleNamespace(parsed_options=options(), shape_class=shapes.HarnessShape())

    shapes._select_shape(env)

    assert env.shape_class is None


def test_with_shape_the_locustfiles_shape_gets_the_profile() -> None:
    shape = shapes.HarnessShape()
    env = SimpleNamespace(
        parsed_options=options(shape="ramp", shape_users=8, shape_ramp_s=4), shape_class=shape
    )

    shapes._select_shape(env)

    assert (env.shape_class, shape.profile) == (shape, shapes.Ramp(users=8, ramp_s=4.0))


def test_a_shape_ends_the_run_at_minus_t_unless_it_has_a_duration_of_its_own() -> None:
    by_t = shapes.profile_from(options(shape="ramp", shape_users=10, shape_ramp_s=5, run_time=30))
    own = shapes.profile_from(
        options(shape="ramp", shape_users=10, shape_ramp_s=5, shape_duration_s=8, run_time=30)
    )

    assert ([10, None], [None, None]) == (
        users_over_time(by_t, [29.9, 30]),
        users_over_time(own, [8, 30]),
    )


def test_a_servers_ramp_asks_for_one_user_per_server_along_its_line() -> None:
    profile = shapes.profile_from(
        options(shape="ramp", shape_servers=10000, shape_ramp_s=100, num_users=7)
    )

    assert [0, 5000, 10000, 10000] == users_over_time(profile, [0, 50, 100, 500])


class TenantUser:
    weight = 3
    fixed_count = 0


class AdminUser:
    weight = 1
    fixed_count = 1


class HolderUser:
    holds_server = True
    weight = 0
    fixed_count = 0


def locust_env(
    given: dict[str, Any], classes: tuple[type, ...] = (TenantUser, AdminUser, HolderUser)
) -> SimpleNamespace:
    """Locust's environment as the shapes see it: weight-0 classes left out, as Locust does."""
    return SimpleNamespace(
        parsed_options=options(**given),
        shape_class=shapes.HarnessShape(),
        available_user_classes={c.__name__: c for c in classes},
        user_classes=[c for c in classes if c.weight or c.fixed_count],
    )


def test_a_servers_shape_starts_only_the_users_that_hold_a_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(HolderUser, "weight", 0)
    env = locust_env({"shape": "ramp", "shape_servers": 40, "shape_ramp_s": 4})

    shapes._select_shape(env)

    assert ([HolderUser], 1, shapes.Ramp(users=40, ramp_s=4.0)) == (
        env.user_classes,
        HolderUser.weight,
        env.shape_class.profile,
    )


def test_a_locust_worker_can_spawn_server_holders_its_master_asks_for() -> None:
    env = locust_env({"worker": True})

    shapes._select_shape(env)

    assert [TenantUser, AdminUser, HolderUser] == env.user_classes


@pytest.mark.parametrize(
    ("given", "classes", "message"),
    [
        (
            {"shape": "ramp", "shape_servers": 5},
            (TenantUser, AdminUser),
            "no user class that holds a game server",
        ),
        ({"shape_servers": 5}, (TenantUser, HolderUser), "--shape-servers needs a shape"),
    ],
    ids=["no-holder-class", "no-shape"],
)
def test_a_servers_shape_that_cannot_hold_servers_stops_locust_saying_why(
    given: dict[str, Any], classes: tuple[type, ...], message: str
) -> None:
    with pytest.raises(SystemExit, match=message):
        shapes._select_shape(locust_env(given, classes))


def test_a_shape_without_profile_ends_the_run_instead_of_guessing() -> None:
    assert shapes.HarnessShape(clock=FakeClock()).tick() is None
