"""The local target of one pytest session: deployed, seeded, in the run ledger, torn down.

Deployed into ``<rootdir>/reports/<run-id>/`` like a ``harness`` run, and registered in
``<rootdir>/.harness/runs/`` so that the next ``harness`` command cleans up after a pytest
that was killed. With ``keep`` the target is brought up as ``harness up`` does (detached,
``.harness/target.json`` pointing at it) and left running for ``harness down``.
"""

from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path
from types import TracebackType

from harness.config import Settings
from harness.drivers.prometheus import PrometheusClient
from harness.engine import _seed
from harness.engine.certify import PROMETHEUS_JOBS
from harness.engine.lifecycle import (
    HELD_SESSIONS,
    bring_up,
    reap_stale_runs,
    register_run,
    unregister_run,
)
from harness.model import Endpoints
from harness.targets import LocalTarget, LocalTopology

log = logging.getLogger(__name__)

STATE_DIR = ".harness"
REPORTS_DIR = "reports"
PROMETHEUS_TIMEOUT_S = 10.0


class SessionTarget:
    """A context manager: deploys on enter (returning ``target.json``), tears down on exit."""

    def __init__(self, *, settings: Settings, root: Path, keep: bool) -> None:
        self.settings = settings
        self.keep = keep
        self.state_dir = root / STATE_DIR
        self.run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)
        self.run_dir = (root / REPORTS_DIR / self.run_id).resolve()
        self.topology = LocalTopology.from_settings(settings)
        self._target: LocalTarget | None = None

    def __enter__(self) -> Path:
        reap_stale_runs(self.state_dir)
        servers = self.settings.topology.game_servers
        if self.keep:
            endpoints = bring_up(
                run_id=self.run_id,
                run_dir=self.run_dir,
                state_dir=self.state_dir,
                topology=self.topology,
                servers=servers,
            )
        else:
            endpoints = self._deploy(servers)
        try:
            self._wait_scraped(endpoints)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        log.info("run %s: the local target is up; files in %s", self.run_id, self.run_dir)
        return self.run_dir / "target.json"

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.keep:
            log.warning(
                "run %s: left running (--harness-keep); `harness down` stops it", self.run_id
            )
            return
        try:
            if self._target is not None:
                self._target.teardown()
        finally:
            unregister_run(self.state_dir, self.run_id)

    def _deploy(self, servers: int) -> Endpoints:
        """As ``bring_up``, but owned by this process: a killed pytest is reaped later."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        register_run(self.state_dir, self.run_id, self.run_dir, detached=False)
        self._target = LocalTarget(run_id=self.run_id, run_dir=self.run_dir, topology=self.topology)
        try:
            return _seed.deploy_seeded(
                self._target,
                servers=servers,
                held_sessions=HELD_SESSIONS,
                ready_timeout_s=self.topology.ready_timeout_s,
            )
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def _wait_scraped(self, endpoints: Endpoints) -> None:
        with PrometheusClient(endpoints.prometheus_url, timeout_s=PROMETHEUS_TIMEOUT_S) as prom:
            prom.wait_targets_up(list(PROMETHEUS_JOBS), timeout_s=self.topology.ready_timeout_s)
