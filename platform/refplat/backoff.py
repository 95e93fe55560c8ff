"""Per-key retry backoff for the reconcile loop: a failed key waits, a success forgets it."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable


class KeyBackoff:
    """Exponential backoff per key, as client-go's rate-limited work queue does it."""

    def __init__(
        self,
        *,
        base_s: float = 0.1,
        max_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_s = base_s
        self._max_s = max_s
        self._clock = clock
        self._failures: dict[Hashable, int] = {}
        self._not_before: dict[Hashable, float] = {}

    def due(self, key: Hashable) -> bool:
        """Whether ``key`` may be reconciled now."""
        return self._clock() >= self._not_before.get(key, 0.0)

    def failed(self, key: Hashable) -> float:
        """Record a failure of ``key``; return how long it now waits."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = min(self._max_s, self._base_s * float(2 ** (failures - 1)))
        self._not_before[key] = self._clock() + delay
        return delay

    def forget(self, key: Hashable) -> None:
        """Record a success of ``key``: its next failure starts from the base delay."""
        self._failures.pop(key, None)
        self._not_before.pop(key, None)

    def retain(self, keys: Iterable[Hashable]) -> None:
        """Forget every key not in ``keys``: its object converged or is gone (level-triggered)."""
        keep = set(keys)
        for key in [k for k in self._failures if k not in keep]:
            self.forget(key)

    def __len__(self) -> int:
        """How many keys are backing off (failed and not yet forgotten)."""
        return len(self._failures)
