"""The testcontainers provider: Redis and Prometheus as containers on the host network, stopped
at teardown. Where no container engine answers, those tests skip with the reason found at run
time, and the provider's refusal is tested instead."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from harness.targets import ContainerProvider, container_engine_problem
from harness.util.errors import InfraError
from harness.util.http import wait_http_ok
from harness.util.net import free_port, port_open

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def engine_problem() -> str | None:
    return container_engine_problem()


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[ContainerProvider]:
    with ContainerProvider(run_id=f"t-{uuid.uuid4().hex[:8]}", run_dir=tmp_path) as p:
        yield p


@pytest.fixture
def engine(engine_problem: str | None) -> None:
    if engine_problem is not None:
        pytest.skip(engine_problem)


def test_without_an_engine_starting_a_service_names_the_problem(
    engine_problem: str | None, provider: ContainerProvider
) -> None:
    if engine_problem is None:
        pytest.skip("a container engine answers here; the refusal cannot be observed")
    assert engine_problem.startswith("no container engine on this machine (")
    with pytest.raises(InfraError, match=r"^Could not start redis from image redis:"):
        provider.redis(["--port", str(free_port(HOST))], port=free_port(HOST))
    assert {} == provider.containers


def test_a_redis_container_answers_on_the_chosen_port_until_teardown(
    engine: None, provider: ContainerProvider, tmp_path: Path
) -> None:
    port = free_port(HOST)
    url = provider.redis(
        ["--bind", HOST, "--port", str(port), "--dir", str(tmp_path), "--save", ""], port=port
    )
    with redis.Redis.from_url(url, socket_timeout=5) as client:
        assert client.ping()
    provider.stop_all()
    assert not port_open(HOST, port)


def test_a_prometheus_container_reads_its_config_from_the_run_directory(
    engine: None, provider: ContainerProvider, tmp_path: Path
) -> None:
    port = free_port(HOST)
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s}\nscrape_configs: []\n")
    url = provider.prometheus(
        [
            f"--config.file={config}",
            f"--web.listen-address={HOST}:{port}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        ],
        port=port,
    )
    wait_http_ok(f"{url}/-/ready", timeout_s=30, what="prometheus container")
