"""The configuration files the local target writes are accepted by the real tools."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.targets import _configs

pytestmark = pytest.mark.integration


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    sd = tmp_path / "gs.json"
    sd.write_text("[]")
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        _configs.prometheus_yml(
            jobs={"refplat-api": ["127.0.0.1:1", "127.0.0.1:2"]},
            blackbox="127.0.0.1:3",
            api_health_url="http://127.0.0.1:4/healthz",
            gameservers_sd_file=str(sd),
        )
    )
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run scripts/setup.sh"
    out = subprocess.run(
        [promtool, "check", "config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert 0 == out.returncode, out.stdout + out.stderr


def test_haproxy_config_passes_haproxy_check(tmp_path: Path) -> None:
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        _configs.haproxy_cfg(
            frontend="127.0.0.1:1", stats="127.0.0.1:2", backends=[("api-1", "127.0.0.1:3")]
        )
    )
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    assert haproxy, "haproxy is missing: run scripts/setup.sh"
    out = subprocess.run(
        [haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert 0 == out.returncode, out.stdout + out.stderr


def test_blackbox_config_passes_its_own_check(tmp_path: Path) -> None:
    cfg = tmp_path / "blackbox.yml"
    cfg.write_text(_configs.blackbox_yml())
    out = subprocess.run(
        ["prometheus-blackbox-exporter", f"--config.file={cfg}", "--config.check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 == out.returncode, out.stdout + out.stderr
