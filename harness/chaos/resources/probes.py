"""Probes of the resource faults: refused cleanly, counted, and nobody else affected.

Each is true before its fault ever ran (a steady-state hypothesis is checked before and after
the method) and, after it, judges what the fault saved in ``<run_dir>/chaos-results/``.
"""

from __future__ import annotations

import logging

from harness.chaos import _target
from harness.chaos.resources import _tenants
from harness.util.http import request

__all__ = ["quota_refused_cleanly", "storm_refused_cleanly", "tenant_unaffected"]

log = logging.getLogger(__name__)


def tenant_unaffected(target_file: str = "", timeout_s: float = 2.0) -> bool:
    """True when the seeded tenant can list its servers and sessions through the balancer."""
    endpoints = _target.load(target_file)
    token = endpoints.tenant_token()
    for path in ("/v1/servers", "/v1/sessions"):
        resp = request("GET", f"{endpoints.api_url}{path}", timeout_s=timeout_s, token=token)
        if not resp.ok:
            log.warning("the seeded tenant's GET %s answered %s", path, resp.status or resp.error)
            return False
    return True


def storm_refused_cleanly(target_file: str = "", fault_name: str = "rate-limit-storm") -> bool:
    """True when the last storm got 429s, each with ``Retry-After``, no 5xx and no dropped
    connection, while the other tenant's every request succeeded (true before any storm)."""
    endpoints = _target.load(target_file)
    result = _tenants.load_result(endpoints, fault_name)
    if result is None:
        return True
    statuses: dict[str, int] = result["statuses"]
    problems = []
    if not statuses.get("429"):
        problems.append(f"no request was throttled: {statuses}")
    if result["throttled_without_retry_after"]:
        problems.append(f"{result['throttled_without_retry_after']} 429s had no Retry-After")
    bad = {s: n for s, n in statuses.items() if s not in ("200", "429")}
    if bad:
        problems.append(f"the storm got answers other than 200 and 429: {bad}")
    others = result["bystander_statuses"]
    if not others or set(others) != {"200"}:
        problems.append(f"the other tenant's requests did not all succeed: {others}")
    for problem in problems:
        log.warning("rate-limit storm: %s", problem)
    return not problems


def quota_refused_cleanly(target_file: str = "", fault_name: str = "disk-quota-fill") -> bool:
    """True when the last fill filled its quota exactly, every refusal was a 507 and never a
    5xx of another kind, and the api replicas' ``refplat_api_quota_rejections_total`` grew by
    at least as many as the fill saw (true before any fill)."""
    endpoints = _target.load(target_file)
    result = _tenants.load_result(endpoints, fault_name)
    if result is None:
        return True
    statuses: dict[str, int] = result["statuses"]
    problems = []
    if result["refused_at_quota"] != 507 or result["used_bytes"] != result["quota_bytes"]:
        problems.append(
            f"the quota was not filled exactly: {result['used_bytes']} of "
            f"{result['quota_bytes']} bytes, one byte more answered {result['refused_at_quota']}"
        )
    bad = {s: n for s, n in statuses.items() if s not in ("200", "201", "507")}
    if bad:
        problems.append(f"answers other than 2xx and 507: {bad}")
    if result["counted_rejections"] < statuses.get("507", 0):
        problems.append(
            f"{statuses.get('507', 0)} 507s seen but {result['counted_rejections']} counted in "
            "refplat_api_quota_rejections_total"
        )
    for problem in problems:
        log.warning("disk quota fill: %s", problem)
    return not problems
