"""The target a locustfile loads: the target file a harness run or ``harness up`` writes, and the
seeded tenant's API token.

A locustfile imports this module; Locust then accepts ``--harness-target-file`` (default:
``$HARNESS_TARGET_FILE`` or ``.harness/target.json``) and ``--tenant-token-file`` (default: the
file the target names). Imported by several locustfiles of one run, it registers them once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from locust import events

DEFAULT_TARGET_FILE = os.environ.get("HARNESS_TARGET_FILE", ".harness/target.json")


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--harness-target-file",
        default=DEFAULT_TARGET_FILE,
        help="target.json written by `harness up` or a harness run",
    )
    parser.add_argument(
        "--tenant-token-file",
        default="",
        help="file holding the tenant's API token (default: the one the target file names)",
    )


def read(options: Any, *, instead: str = "") -> dict[str, Any]:
    """The target file ``--harness-target-file`` names; exit with the next step when it is
    missing or not JSON. ``instead`` names a flag that makes the file unnecessary."""
    path = Path(options.harness_target_file)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        flags = f"--harness-target-file or {instead}" if instead else "--harness-target-file"
        raise SystemExit(
            f"{path}: no target connection file; run `harness up` first, or pass {flags}"
        ) from None
    except ValueError as exc:
        raise SystemExit(f"{path}: not a target file ({exc}); run `harness up` again") from None
    return data


def tenant_token(options: Any, target: dict[str, Any]) -> str:
    """The tenant's API token: from ``--tenant-token-file``, else the file ``target`` names."""
    token_file = options.tenant_token_file or target.get("tenant_token_file", "")
    if not token_file:
        raise SystemExit(
            f"{options.harness_target_file}: the target has no seeded tenant; "
            "pass --tenant-token-file"
        )
    return Path(token_file).read_text().strip()
