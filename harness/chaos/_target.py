"""Shared plumbing of the activities: the target file, controller status, the fault timeline."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.drivers.platform_api import PlatformApi
from harness.engine.timeline import Event, Timeline
from harness.model import Endpoints, ProcessInfo
from harness.util.errors import HarnessError
from harness.util.http import request

DEFAULT_TARGET_FILE = ".harness/target.json"
STATUS_TIMEOUT_S = 1.0


class ActivityFailed(HarnessError):
    """An activity could not do what it promised; Chaos Toolkit records it as failed."""


def check_within(name: str, value: float, maximum: float) -> None:
    """Raise ActivityFailed unless the parameter ``name`` lies in (0, ``maximum``]."""
    if not 0 < value <= maximum:
        raise ActivityFailed(f"{name} must be in (0, {maximum:g}], not {value}")


def list_servers(endpoints: Endpoints) -> list[dict[str, Any]]:
    """Every game server of the target, all pages, as the admin sees them (DriverError)."""
    return PlatformApi(endpoints.api_url, token=endpoints.admin_token()).servers()


def load(target_file: str) -> Endpoints:
    """Read the target named by ``target_file`` (or the default one)."""
    return Endpoints.read(Path(target_file or DEFAULT_TARGET_FILE))


def timeline(endpoints: Endpoints) -> Timeline:
    return Timeline(Path(endpoints.timeline_file))


def record_fault(
    endpoints: Endpoints,
    name: str,
    event: str,
    *,
    target: str,
    pid: int | None = None,
    detail: str | None = None,
) -> Event:
    """Append the fault ``name``'s ``event`` (``injected``, ``ended``, ...) against ``target``
    to the run's timeline; return it with its instant ``at``."""
    entry: Event = {"kind": "fault", "name": name, "event": event, "target": target}
    if pid is not None:
        entry["pid"] = pid
    if detail is not None:
        entry["detail"] = detail
    return timeline(endpoints).append(entry)


def controller_statuses(endpoints: Endpoints) -> list[tuple[ProcessInfo, dict[str, Any]]]:
    """``/status`` of every controller replica that answers (a dead one is left out)."""
    out = []
    for proc in endpoints.by_role("controller"):
        resp = request("GET", f"{proc.url}/status", timeout_s=STATUS_TIMEOUT_S)
        if resp.ok:
            out.append((proc, resp.json()))
    return out


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
