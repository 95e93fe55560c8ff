"""Leader election: a lease in Redis with a fencing token.

Acquiring the lease increments ``refplat:leader:epoch`` and stores ``id:epoch`` with a TTL;
renewal is a compare-and-extend. Every controller write carries the id and epoch and is
rejected by Redis unless they still hold the lease (see ``FENCE`` in :mod:`refplat.scripts`).
Locally the lease is also trusted only until ``ttl`` after the last successful renewal,
measured on the monotonic clock, so a paused leader considers itself deposed on waking.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from refplat.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Term:
    """One leadership term: who holds the lease, under which epoch."""

    holder: str
    epoch: int


class TermKeeper:
    """The term bookkeeping of a leader lease, shared by :class:`Lease` and ``KubeLease``.

    A term is trusted until ``ttl_s`` after the start of the last successful acquisition or
    renewal, on ``clock``; a subclass supplies ``tick`` and ``release``.
    """

    noun = "lease"  # how log lines name the lease

    def __init__(self, *, holder: str, ttl_s: float, clock: Callable[[], float]) -> None:
        self._holder = holder
        self._ttl_s = ttl_s
        self._clock = clock
        self._term: Term | None = None
        self._valid_until = 0.0

    @property
    def term(self) -> Term | None:
        """The current term if this controller holds a lease it still trusts."""
        term = self._term
        if term is not None and self._clock() >= self._valid_until:
            log.warning(
                "%s epoch %d went unrenewed for %g s; stepping down",
                self.noun,
                term.epoch,
                self._ttl_s,
            )
            self._term = None
        return self._term

    def step_down(self, *, reason: str) -> None:
        """Forget the term (after a failed renewal or a fenced write)."""
        if self._term is not None:
            log.warning("stepping down from epoch %d: %s", self._term.epoch, reason)
        self._term = None

    def _begin(self, epoch: int, *, started: float) -> None:
        """Hold a new term under ``epoch``, acquired at ``started``."""
        self._term = Term(holder=self._holder, epoch=epoch)
        self._valid_until = started + self._ttl_s

    def _renewed(self, *, started: float) -> None:
        """Trust the term for another ``ttl_s`` from ``started``."""
        self._valid_until = started + self._ttl_s

    def _end(self) -> Term | None:
        """Forget the term (to release it); the term that was held, if any."""
        term, self._term = self._term, None
        return term


class Lease(TermKeeper):
    """This controller's view of the leader lease."""

    def __init__(
        self,
        *,
        store: Store,
        holder: str,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(holder=holder, ttl_s=ttl_s, clock=clock)
        self._store = store
        self._ttl_ms = max(1, int(ttl_s * 1000))

    async def tick(self) -> bool:
        """Acquire the lease when free or renew it when held; return whether held now."""
        started = self._clock()
        if self.term is None:
            epoch = int(await self._store.run("LEASE_ACQUIRE", self._holder, self._ttl_ms))
            if epoch:
                self._begin(epoch, started=started)
                log.info("acquired the lease with epoch %d", epoch)
            return self._term is not None
        assert self._term is not None
        renewed = await self._store.run("LEASE_RENEW", self._holder, self._term.epoch, self._ttl_ms)
        if renewed:
            self._renewed(started=started)
        else:
            self.step_down(reason="the lease is held by another epoch")
        return self._term is not None

    async def release(self) -> None:
        """Give the lease up so a standby can take over without waiting for the TTL."""
        term = self._end()
        if term is not None:
            await self._store.run("LEASE_RELEASE", term.holder, term.epoch)
            log.info("released the lease of epoch %d", term.epoch)
