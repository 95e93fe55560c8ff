"""Leader election on a ``coordination.k8s.io/v1`` Lease, fenced in Redis like the Redis lease.

The same interface as :class:`refplat.lease.Lease` (``term``, ``tick``, ``step_down``,
``release``), for controllers that run in a cluster. The Lease holds ``holderIdentity``,
``leaseDurationSeconds``, ``acquireTime``, ``renewTime`` and ``leaseTransitions``; every write
is a replace with the ``resourceVersion`` that was read, so two candidates cannot both win
(the loser gets 409 Conflict). As in client-go, expiry is judged on the local monotonic clock:
a lease is free when its record has not changed for ``leaseDurationSeconds`` since this
candidate first saw it (no trust in the holder's wall clock), or when its holder is empty
(a released lease).

The fencing epoch is ``leaseTransitions``. Unlike client-go, which counts changes of holder
only, every acquisition increments it, so each term has its own epoch, and it never goes
below the Redis epoch (``refplat:leader:epoch``, read before acquiring) so that a switch from
the Redis lease keeps epochs monotonic.

How it feeds the fence: every controller write is checked in Redis against
``refplat:leader:epoch`` and ``refplat:leader:lease`` (``FENCE`` in :mod:`refplat.scripts`).
After each acquisition and renewal of the Lease, the holder installs its term there with
``INSTALL_FENCE``: it sets the epoch and ``id:epoch`` (with the lease TTL) only if its epoch is
not older than the one installed, and not a different holder's of the same epoch. A newer
leader's install makes every write of the previous one fail ``FENCED``; an older leader's
install is refused and it steps down. A leader that cannot install (Redis unreachable) writes
nothing anyway: its writes fail too. Do not run Redis-lease and kube-lease controllers on the
same Redis at once: the Redis lease would not see the Lease.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubernetes import client as k8s

from refplat.lease import TermKeeper
from refplat.scripts import script
from refplat.store import PREFIX, Store

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 5.0

INSTALL_FENCE = script(
    """
local cid, epoch, ttl_ms = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local current = tonumber(redis.call('GET', P .. 'leader:epoch') or '0')
if epoch < current then return 0 end
local held = redis.call('GET', P .. 'leader:lease')
if epoch == current and held and held ~= cid .. ':' .. epoch then return 0 end
redis.call('SET', P .. 'leader:epoch', epoch)
redis.call('SET', P .. 'leader:lease', cid .. ':' .. epoch, 'PX', ttl_ms)
return 1
"""
)


@dataclass(frozen=True)
class LeaseRecord:
    """What a candidate observes of the Lease (a change restarts the expiry clock)."""

    holder: str
    renew_time: str
    transitions: int


class KubeLease(TermKeeper):
    """This controller's view of the leader Lease ``namespace/name``."""

    noun = "Lease"

    def __init__(
        self,
        *,
        api: k8s.ApiClient,
        namespace: str,
        name: str,
        holder: str,
        ttl_s: float,
        store: Store | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(holder=holder, ttl_s=ttl_s, clock=clock)
        self._leases = k8s.CoordinationV1Api(api)
        self._namespace = namespace
        self._name = name
        self._duration = max(1, round(ttl_s))
        self._store = store
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0

    async def tick(self) -> bool:
        """Acquire the Lease when free or renew it when held; return whether held now."""
        started = self._clock()
        held = self.term
        if held is None:
            floor = await self._redis_epoch()
            epoch = await asyncio.to_thread(self._acquire, floor)
            if epoch and await self._install(epoch):
                self._begin(epoch, started=started)
                log.info(
                    "acquired the Lease %s/%s with epoch %d", self._namespace, self._name, epoch
                )
            return self._term is not None
        renewed = await asyncio.to_thread(self._renew, held.epoch)
        if renewed and await self._install(held.epoch):
            self._renewed(started=started)
        elif not renewed:
            self.step_down(reason="the Lease is held by another holder or epoch")
        else:
            self.step_down(reason="a newer epoch is installed in Redis")
        return self._term is not None

    async def release(self) -> None:
        """Empty the holder so a standby takes over without waiting for the duration."""
        term = self._end()
        if term is not None:
            await asyncio.to_thread(self._release, term.epoch)
            log.info("released the Lease of epoch %d", term.epoch)

    async def _redis_epoch(self) -> int:
        if self._store is None:
            return 0
        return int(await self._store.redis.get(f"{PREFIX}leader:epoch") or 0)

    async def _install(self, epoch: int) -> bool:
        if self._store is None:
            return True
        ttl_ms = max(1, int(self._ttl_s * 1000))
        args = (self._holder, epoch, ttl_ms)
        return bool(await self._store.run_source("INSTALL_FENCE", INSTALL_FENCE, *args))

    # Blocking calls (run in a thread).

    def _read(self) -> k8s.V1Lease | None:
        try:
            return self._leases.read_namespaced_lease(
                self._name, self._namespace, _request_timeout=CALL_TIMEOUT_S
            )
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _acquire(self, floor: int) -> int:
        """Take the Lease if it is free; the new epoch, or 0."""
        lease = self._read()
        if lease is None:
            return self._write(None, transitions=floor + 1, acquired=True)
        spec = lease.spec or k8s.V1LeaseSpec()
        record = LeaseRecord(
            holder=spec.holder_identity or "",
            renew_time=str(spec.renew_time),
            transitions=spec.lease_transitions or 0,
        )
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock()
        duration = spec.lease_duration_seconds or self._duration
        expired = self._clock() - self._observed_at >= duration
        if record.holder and record.holder != self._holder and not expired:
            return 0
        transitions = max(record.transitions, floor) + 1
        return self._write(lease, transitions=transitions, acquired=True)

    def _renew(self, epoch: int) -> bool:
        lease = self._read()
        spec = lease.spec if lease is not None else None
        if spec is None or spec.holder_identity != self._holder:
            return False
        if (spec.lease_transitions or 0) != epoch:
            return False
        return self._write(lease, transitions=epoch, acquired=False) == epoch

    def _release(self, epoch: int) -> None:
        lease = self._read()
        spec = lease.spec if lease is not None else None
        if spec is None or spec.holder_identity != self._holder:
            return
        if (spec.lease_transitions or 0) != epoch:
            return
        self._write(lease, transitions=epoch, acquired=False, holder="")

    def _write(
        self,
        lease: k8s.V1Lease | None,
        *,
        transitions: int,
        acquired: bool,
        holder: str | None = None,
    ) -> int:
        """Create or replace (at the read resourceVersion) the Lease; the epoch, or 0."""
        now = datetime.datetime.now(datetime.UTC)
        previous = lease.spec if lease is not None else None
        spec = k8s.V1LeaseSpec(
            holder_identity=self._holder if holder is None else holder,
            lease_duration_seconds=self._duration,
            acquire_time=now if acquired or previous is None else previous.acquire_time,
            renew_time=now,
            lease_transitions=transitions,
        )
        version = lease.metadata.resource_version if lease and lease.metadata else None
        meta = k8s.V1ObjectMeta(
            name=self._name, namespace=self._namespace, resource_version=version
        )
        body = k8s.V1Lease(
            api_version="coordination.k8s.io/v1", kind="Lease", metadata=meta, spec=spec
        )
        try:
            if lease is None:
                self._leases.create_namespaced_lease(
                    self._namespace, body, _request_timeout=CALL_TIMEOUT_S
                )
            else:
                self._leases.replace_namespaced_lease(
                    self._name, self._namespace, body, _request_timeout=CALL_TIMEOUT_S
                )
        except k8s.ApiException as exc:
            if exc.status == 409:  # another candidate wrote first
                return 0
            raise
        return transitions
