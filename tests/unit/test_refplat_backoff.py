"""Per-key backoff of the reconcile work queue, on a fake clock."""

from __future__ import annotations

from refplat.backoff import KeyBackoff


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_key_waits_twice_as_long_each_time_and_a_success_forgets_it() -> None:
    clock = FakeClock()
    backoff = KeyBackoff(base_s=1.0, max_s=3.0, clock=clock)

    delays = [backoff.failed("k") for _ in range(4)]
    waiting = (backoff.due("k"), len(backoff))
    backoff.forget("k")

    assert ([1.0, 2.0, 3.0, 3.0], (False, 1)) == (delays, waiting)
    assert (True, 0, 1.0) == (backoff.due("k"), len(backoff), backoff.failed("k"))


def test_retain_forgets_the_keys_that_no_longer_appear() -> None:
    backoff = KeyBackoff(clock=FakeClock())
    for key in ("gone", "still-failing"):
        backoff.failed(key)

    backoff.retain(["still-failing", "never-failed"])

    assert (1, True, False) == (len(backoff), backoff.due("gone"), backoff.due("still-failing"))
