"""Probes against the Redis of a target with Sentinels: who is primary, and what survived."""

from __future__ import annotations

import logging
import time

from harness.chaos import _target
from harness.chaos._target import ActivityFailed
from harness.chaos.redis import _topology
from harness.drivers.platform_api import PlatformApi
from harness.util.errors import HarnessError

__all__ = [
    "acknowledged_sessions_survive",
    "sentinel_primary",
    "sentinel_primary_changed",
    "sentinel_reports_primary",
]

log = logging.getLogger(__name__)

MAX_WAIT_S = 120.0
POLL_S = 0.1


def sentinel_primary(target_file: str = "") -> str:
    """The name of the Redis a majority of the Sentinels report as primary now ("" if none)."""
    endpoints = _target.load(target_file)
    proc = _topology.primary(endpoints)
    return proc.name if proc is not None else ""


def sentinel_reports_primary(target_file: str = "") -> bool:
    """True when a majority of the Sentinels agree on a primary that is a running Redis of the
    target (a primary that is dead but not yet replaced makes it False)."""
    endpoints = _target.load(target_file)
    proc = _topology.primary(endpoints)
    if proc is None:
        log.warning("the sentinels do not agree on a primary")
        return False
    if not _topology.running(endpoints, proc):
        log.warning("the sentinels report %s as primary, but it is not running", proc.name)
        return False
    return True


def sentinel_primary_changed(target_file: str = "", within_s: float = 15.0) -> bool:
    """True once a majority of the Sentinels report a running primary other than the Redis the
    latest fault on the timeline hit, waiting at most ``within_s`` for the failover.

    False when no fault hit a Redis yet, or when the sentinels did not fail over in time.
    """
    if not 0 <= within_s <= MAX_WAIT_S:
        raise ActivityFailed(f"within_s must be in [0, {MAX_WAIT_S:g}], not {within_s}")
    endpoints = _target.load(target_file)
    killed = _topology.last_killed(endpoints)
    if not killed:
        log.warning("no fault has hit a Redis of target %s yet", endpoints.run_id)
        return False
    deadline = time.monotonic() + within_s
    while True:
        proc = _topology.primary(endpoints)
        if proc is not None and proc.name != killed and _topology.running(endpoints, proc):
            return True
        if time.monotonic() >= deadline:
            log.warning("the sentinels still report %s as primary", proc.name if proc else "none")
            return False
        time.sleep(POLL_S)


def acknowledged_sessions_survive(
    target_file: str = "", record: str = "redis-acknowledged"
) -> bool:
    """True when every session in the run's record ``record`` (written by ``allocate_sessions``
    once the platform acknowledged it) still exists and is Active: no acknowledged write lost.

    True when the record is empty (nothing was acknowledged, so nothing can be lost); False when
    the API cannot answer, since then nothing can be shown to have survived.
    """
    endpoints = _target.load(target_file)
    api = PlatformApi(endpoints.api_url, token=endpoints.admin_token())
    lost = []
    for sid in _topology.recorded(endpoints, record):
        try:
            session = api.session(sid)
        except HarnessError as exc:
            log.warning("cannot read session %s: %s", sid, exc)
            return False
        if session is None or session.get("state") != "Active":
            lost.append(sid)
    if lost:
        log.warning("acknowledged sessions lost: %s", ", ".join(lost))
    return not lost
