"""Test hosts as network namespaces joined by a bridge in a fabric namespace (root only).

Each host gets one address in a /24 of 198.18.0.0/15 (benchmarking space, never routed on the
Internet) chosen free at run time; the hosts have no default route, so they reach nothing but
each other. One extra veth links the fabric to the root namespace so that the harness itself can
talk to the hosts. Every namespace is listed in ``<run_dir>/netns.json`` before it is created,
so teardown, ``harness down`` or the next run can remove what a killed run left.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.util.errors import InfraError

log = logging.getLogger(__name__)

IP_TIMEOUT_S = 10.0
LEDGER = "netns.json"


@dataclass(frozen=True)
class Host:
    """One test host: its name, its namespace and its address on the fabric."""

    name: str
    namespace: str
    address: str

    def prefix(self) -> list[str]:
        """The argv prefix that runs a command inside this host."""
        return ["ip", "netns", "exec", self.namespace]


def netns_supported() -> bool:
    """Whether this process may create network namespaces (root, with ``ip`` and ``nft``)."""
    return os.geteuid() == 0 and _which("ip") and _which("nft")


def _which(cmd: str) -> bool:
    return any(Path(d, cmd).exists() for d in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"))


def run_ip(*args: str, namespace: str = "") -> str:
    """Run ``ip`` (inside ``namespace`` when given); InfraError with its words on failure."""
    argv = ["ip", *(["netns", "exec", namespace, "ip"] if namespace else []), *args]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=IP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfraError(f"`{' '.join(argv)}` could not run: {exc}.") from exc
    if out.returncode != 0:
        raise InfraError(f"`{' '.join(argv)}` failed: {out.stderr.strip()}.")
    return out.stdout


class Fabric:
    """Creates and removes the namespaces of one run; a context manager."""

    def __init__(self, *, run_id: str, run_dir: Path) -> None:
        self.tag = hashlib.sha256(run_id.encode()).hexdigest()[:5]
        self.run_dir = run_dir
        self.hosts: dict[str, Host] = {}
        self.subnet = ""
        self._namespaces: list[str] = []

    def __enter__(self) -> Fabric:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    @property
    def fabric_ns(self) -> str:
        return f"gsh-{self.tag}-fabric"

    @property
    def root_address(self) -> str:
        return f"{self.subnet}.254"

    def create(self, names: Sequence[str]) -> dict[str, Host]:
        """Create one namespace per name, all on one bridge; return the hosts by name."""
        if len(names) > 250:
            raise InfraError(f"{len(names)} hosts do not fit one /24 fabric (at most 250).")
        self.subnet = _free_subnet()
        self._add_namespace(self.fabric_ns)
        run_ip("link", "add", "br0", "type", "bridge", namespace=self.fabric_ns)
        run_ip("link", "set", "br0", "up", namespace=self.fabric_ns)
        self._link("root", namespace="", address=f"{self.root_address}/24")
        for i, name in enumerate(names, start=1):
            ns = f"gsh-{self.tag}-{name}"
            self._add_namespace(ns)
            address = f"{self.subnet}.{i}"
            self._link(str(i), namespace=ns, address=f"{address}/24")
            run_ip("link", "set", "lo", "up", namespace=ns)
            self.hosts[name] = Host(name=name, namespace=ns, address=address)
        log.info("fabric %s: %d hosts in %s.0/24", self.fabric_ns, len(names), self.subnet)
        return dict(self.hosts)

    def _add_namespace(self, ns: str) -> None:
        self._namespaces.append(ns)
        self._write_ledger()  # listed before it exists: a crash right after still cleans it
        run_ip("netns", "add", ns)

    def _link(self, index: str, *, namespace: str, address: str) -> None:
        """A veth pair: one end in ``namespace`` (root when empty), the other on the bridge."""
        inner, outer = f"g{self.tag}{index}a", f"g{self.tag}{index}b"
        run_ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        run_ip("link", "set", outer, "netns", self.fabric_ns)
        run_ip("link", "set", outer, "master", "br0", namespace=self.fabric_ns)
        run_ip("link", "set", outer, "up", namespace=self.fabric_ns)
        if namespace:
            run_ip("link", "set", inner, "netns", namespace)
            run_ip("link", "set", inner, "name", "eth0", namespace=namespace)
            inner = "eth0"
        run_ip("addr", "add", address, "dev", inner, namespace=namespace)
        run_ip("link", "set", inner, "up", namespace=namespace)

    def _write_ledger(self) -> None:
        path = self.run_dir / LEDGER
        path.write_text(json.dumps({"namespaces": self._namespaces}, indent=2))

    def teardown(self) -> None:
        remove_namespaces(self.run_dir)
        self._namespaces.clear()
        self.hosts.clear()


def remove_namespaces(run_dir: Path) -> list[str]:
    """Delete every namespace a run's ledger lists (their veths go with them)."""
    try:
        listed: list[str] = json.loads((run_dir / LEDGER).read_text())["namespaces"]
    except (OSError, ValueError, KeyError):
        return []
    existing = set(run_ip("netns", "list").split()) if listed else set()
    removed = []
    for ns in reversed(listed):
        if ns in existing:
            try:
                run_ip("netns", "del", ns)
                removed.append(ns)
            except InfraError as exc:
                log.error("could not remove namespace %s: %s", ns, exc)
    (run_dir / LEDGER).write_text(json.dumps({"namespaces": []}))
    return removed


def _free_subnet() -> str:
    """A /24 of 198.18.0.0/15 that no address on this machine uses yet."""
    used = run_ip("-4", "-o", "addr", "show")
    for third in range(256):
        for second in (18, 19):
            prefix = f"198.{second}.{third}"
            if f" {prefix}." not in used:
                return prefix
    raise InfraError("Every /24 of 198.18.0.0/15 is in use; remove stale test fabrics first.")
