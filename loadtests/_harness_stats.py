"""Per-second request statistics for the harness, as a Locust plugin module.

A locustfile imports this module; Locust then accepts ``--harness-stats-file PATH``. Every
request is counted in the second it ended, by name, with its response time rounded as Locust
rounds it, so the harness can cut exact counts and percentiles per phase (baseline, each fault,
recovery) rather than whole-run totals. The file is written when Locust quits. Without the
flag (plain ``locust -f``), nothing is recorded.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from locust import events

# second -> "METHOD name" -> {"n": count, "f": failures, "rt": {rounded ms: count}}
_SECONDS: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)


@events.init_command_line_parser.add_listener
def _add_argument(parser: Any) -> None:
    parser.add_argument("--harness-stats-file", default="", help="write per-second statistics")


def _rounded(ms: float) -> int:
    """Locust's own rounding of response times (2 significant digits above 100 ms)."""
    if ms < 100:
        return round(ms)
    if ms < 1000:
        return int(round(ms, -1))
    return int(round(ms, -2))


@events.request.add_listener
def _on_request(
    request_type: str, name: str, response_time: float, exception: Any = None, **_kw: Any
) -> None:
    key = f"{request_type} {name}"
    bucket = _SECONDS[int(time.time())].setdefault(key, {"n": 0, "f": 0, "rt": {}})
    bucket["n"] += 1
    if exception is not None:
        bucket["f"] += 1
    rt = _rounded(response_time or 0)
    bucket["rt"][rt] = bucket["rt"].get(rt, 0) + 1


@events.quitting.add_listener
def _on_quitting(environment: Any, **_kw: Any) -> None:
    options = environment.parsed_options
    path = getattr(options, "harness_stats_file", "") if options is not None else ""
    if path:
        Path(path).write_text(json.dumps({"seconds": _SECONDS}))
