"""Connection details of a deployed target: what ``target.json`` holds.

Experiments run with the plain upstream ``chaos run`` and locustfiles run with plain ``locust``
read this file to find the system under test, so its keys are public.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.util.errors import ConfigError


@dataclass(frozen=True)
class ProcessInfo:
    """One process of the system under test."""

    name: str
    role: str
    pid: int
    url: str = ""
    host: str = ""


@dataclass(frozen=True)
class HostInfo:
    """One test host of the target: a network namespace with one address ("" on loopback)."""

    name: str
    namespace: str
    address: str
    region: str = ""  # the region the host belongs to ("" in a one-region layout, and for ops)


@dataclass(frozen=True)
class Endpoints:
    """Where everything of one deployed target is, and the files that belong to its run."""

    run_id: str
    target: str
    run_dir: str
    api_url: str
    admin_token_file: str
    redis_url: str
    prometheus_url: str
    timeline_file: str
    capabilities: tuple[str, ...] = ()
    processes: tuple[ProcessInfo, ...] = ()
    tenant_token_file: str = ""
    hosts: tuple[HostInfo, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    def host(self, name: str) -> HostInfo:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts) or "none: the target runs on loopback"
        raise ConfigError(f"Target {self.run_id} has no host {name!r} (hosts: {known}).")

    def by_role(self, role: str) -> list[ProcessInfo]:
        return [p for p in self.processes if p.role == role]

    def admin_token(self) -> str:
        return Path(self.admin_token_file).read_text().strip()

    def tenant_token(self) -> str:
        if not self.tenant_token_file:
            raise ConfigError(f"Target {self.run_id} has no seeded tenant token yet.")
        return Path(self.tenant_token_file).read_text().strip()

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def write(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> Endpoints:
        """Read a ``target.json``; a missing or broken file is a ConfigError saying what to do."""
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: no target connection file. Bring a target up first with "
                "`harness up`, or set HARNESS_TARGET_FILE to a run's target.json."
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not a readable target connection file: {exc}.") from exc
        try:
            procs = tuple(ProcessInfo(**p) for p in data.pop("processes", []))
            hosts = tuple(HostInfo(**h) for h in data.pop("hosts", []))
            caps = tuple(data.pop("capabilities", ()))
            return cls(processes=procs, hosts=hosts, capabilities=caps, **data)
        except TypeError as exc:
            raise ConfigError(
                f"{path}: unexpected content in target connection file: {exc}."
            ) from exc
