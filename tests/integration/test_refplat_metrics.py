"""Every refplat process exposes the full metric set, clean under ``promtool check metrics``.

One platform of real processes (api, 2 controllers, 2 agents on one Redis) goes through
allocations, an ended and an expired session, a killed agent whose node goes lost, and a
lease taken away under the leader (a fencing rejection and a leader change); then every
/metrics page is linted with promtool and read for the values that activity must show.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from mcstatus import JavaServer
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from refplat.census import session_state_counts, ttl_prune_lag
from refplat.cli import main
from refplat.metrics import AgentMetrics, ApiMetrics, Census, ControllerMetrics
from refplat.model import EndReason, GameServerState, NodeState, SessionState
from refplat.store import Store
from tests.integration.test_refplat_platform import (
    HTTP_TIMEOUT_S,
    Launcher,
    Platform,
    call,
    new_tenant,
    ready_servers,
    status_of,
    wait_for,
)
from tests.integration.test_refplat_store import controller, lead, with_store
from tests.integration.test_refplat_store import ready_servers as ready_in_redis

pytestmark = pytest.mark.integration

PROMTOOL_TIMEOUT_S = 10.0
SESSION_TTL_S = "2"
HEARTBEAT_TIMEOUT_S = "2"
SLOW_RENEW = ["--renew-interval-s", "60", "--lease-ttl-s", "120"]
INTRUDER_LEASE_MS = 3000


@dataclass(frozen=True)
class Page:
    """One scraped /metrics page: its text and its samples by name."""

    text: str
    samples: dict[str, list[tuple[dict[str, str], float]]]

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample ``name`` with ``labels``; fail when missing."""
        for sample_labels, value in self.samples.get(name, []):
            if sample_labels == labels:
                return value
        raise AssertionError(f"{name}{labels} is missing")

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """Every sample of ``name`` keyed by the value of ``label``."""
        return {labels[label]: value for labels, value in self.samples.get(name, [])}


def parse(text: str) -> Page:
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return Page(text=text, samples=samples)


def scrape(base_url: str) -> Page:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=HTTP_TIMEOUT_S) as response:
        return parse(response.read().decode())


def promtool_problems(text: str) -> tuple[int, str]:
    """Exit code and output of ``promtool check metrics`` on ``text`` ((0, "") when clean)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed; install prometheus (scripts/setup.sh does).")
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        check=False,
    )
    return done.returncode, (done.stdout + done.stderr).strip()


def allocate(api: str, token: str, *, idem_key: str = "") -> tuple[int, Any]:
    """POST /v1/sessions, with an Idempotency-Key when given."""
    if not idem_key:
        return call("POST", f"{api}/v1/sessions", token=token, body={})
    request = urllib.request.Request(f"{api}/v1/sessions", data=b"{}", method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    request.add_header("Idempotency-Key", idem_key)
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
        return response.status, json.loads(response.read())


@dataclass
class Cluster:
    """The running platform plus the agents' metrics urls."""

    plat: Platform
    agents: dict[str, tuple[subprocess.Popen[bytes], str]]


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    keys = tmp_path / "audit.keys"
    assert 0 == main(["audit", "keygen", "--out", str(keys)])
    audit = ["--audit-key-file", str(keys)]
    launch = Launcher(redis_url=redis_url, tmp_path=tmp_path)
    try:
        agents = {n: launch.start(n, "agent", "--node", n) for n in ("node-1", "node-2")}
        ctl = ["controller", "--heartbeat-timeout-s", HEARTBEAT_TIMEOUT_S, *audit]
        a = launch.start("a", *ctl, "--id", "a", *SLOW_RENEW)
        launch.wait_healthy(a[1])
        wait_for("controller a to lead", lambda: status_of(a[1])["leader"], timeout_s=10)
        b = launch.start("b", *ctl, "--id", "b")
        api_args = ["--instance", "api-0", "--admin-token-file", str(launch.token_file)]
        api = launch.start("api", "api", *api_args, "--session-ttl-s", SESSION_TTL_S, *audit)[1]
        launch.wait_healthy(api, b[1], *(url for _, url in agents.values()))
        plat = Platform(api=api, controllers={"a": a, "b": b})
        yield Cluster(plat=plat, agents=agents)
    finally:
        launch.close()


def session_state(api: str, token: str, session_id: str) -> tuple[str, str | None]:
    body = call("GET", f"{api}/v1/sessions/{session_id}", token=token)[1]
    return body["state"], body.get("reason")


@dataclass(frozen=True)
class Scraped:
    """The pages after the scenario, and node-2's heartbeat age when it was found lost."""

    pages: dict[str, Page]
    age_when_lost: float


def allocate_end_and_expire(cluster: Cluster) -> str:
    """Two servers; allocations created, existing, created, none; one ended, one expired."""
    api, plat = cluster.plat.api, cluster.plat
    token = new_tenant(plat, "metrics")
    for _ in range(2):
        assert 201 == call("POST", f"{api}/v1/servers", token=token, body={})[0]
    ready_servers(plat, token, 2)
    first = allocate(api, token, idem_key="k1")
    again = allocate(api, token, idem_key="k1")
    second = allocate(api, token)
    none = allocate(api, token)
    assert [201, 200, 201, 409] == [first[0], again[0], second[0], none[0]]
    JavaServer(first[1]["address"], first[1]["port"], timeout=2).status(tries=1)
    assert 200 == call("DELETE", f"{api}/v1/sessions/{second[1]['id']}", token=token)[0]
    wait_for(
        "the first session to expire",
        lambda: session_state(api, token, first[1]["id"]) == ("Ended", "Expired"),
        timeout_s=10,
    )
    return token


def lose_node_2(cluster: Cluster, leader_url: str) -> tuple[Page, float]:
    """Kill node-2's agent; return its last page and its heartbeat age once it is Lost."""
    proc, url = cluster.agents["node-2"]
    page = scrape(url)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=5)
    wait_for(
        "node-2 to be lost",
        lambda: scrape(leader_url).by_label("refplat_nodes", "state").get("Lost") == 1,
        timeout_s=10,
    )
    return page, scrape(leader_url).value("refplat_node_heartbeat_age_seconds", node="node-2")


def fence_a_and_fail_over_to_b(cluster: Cluster, redis_url: str, token: str) -> None:
    """Hand the lease to an intruder under a, make a write (fenced), let b take over."""
    api, b_url = cluster.plat.api, cluster.plat.controllers["b"][1]
    with redis.Redis.from_url(redis_url, socket_timeout=5) as client:
        client.set("refplat:leader:lease", "intruder:999", px=INTRUDER_LEASE_MS)
    assert 201 == call("POST", f"{api}/v1/servers", token=token, body={})[0]
    wait_for("b to lead", lambda: status_of(b_url)["leader"], timeout_s=15)
    ready_servers(cluster.plat, token, 3)
    wait_for(
        "b's census to count 3 Ready servers",
        lambda: scrape(b_url).by_label("refplat_game_servers", "state").get("Ready") == 3,
        timeout_s=10,
    )
    node1_url = cluster.agents["node-1"][1]
    wait_for(
        "node-1 to run 3 listeners",
        lambda: scrape(node1_url).value("refplat_agent_game_servers") == 3,
        timeout_s=5,
    )


def run_scenario(cluster: Cluster, redis_url: str) -> Scraped:
    controllers = cluster.plat.controllers
    token = allocate_end_and_expire(cluster)
    node2_page, age_when_lost = lose_node_2(cluster, controllers["a"][1])
    fence_a_and_fail_over_to_b(cluster, redis_url, token)
    pages = {
        "api": scrape(cluster.plat.api),
        "a": scrape(controllers["a"][1]),
        "b": scrape(controllers["b"][1]),
        "node-1": scrape(cluster.agents["node-1"][1]),
        "node-2": node2_page,
    }
    return Scraped(pages=pages, age_when_lost=age_when_lost)


def check_leader(b: Page, age_when_lost: float) -> None:
    servers = b.by_label("refplat_game_servers", "state")
    assert ({s.value for s in GameServerState}, 3.0) == (set(servers), sum(servers.values()))
    sessions = b.by_label("refplat_sessions", "state")
    assert {s.value: 2.0 if s is SessionState.ENDED else 0.0 for s in SessionState} == sessions
    assert {"Live": 1.0, "Lost": 1.0} == b.by_label("refplat_nodes", "state")
    assert {"node-1", "node-2"} == set(b.by_label("refplat_node_heartbeat_age_seconds", "node"))
    assert age_when_lost < b.value("refplat_node_heartbeat_age_seconds", node="node-2")
    assert 0.0 == b.value("refplat_controller_ttl_prune_lag_seconds")
    assert {"due", "backoff"} == set(b.by_label("refplat_controller_work_queue_depth", "state"))
    assert 0 < b.value("refplat_controller_reconcile_duration_seconds_count")
    assert 0 < b.value("refplat_controller_reconciles_total")
    changes = b.by_label("refplat_controller_leader_changes_total", "event")
    assert (True, 1.0) == (1 <= changes["acquired"], changes["acquired"] - changes["lost"])
    assert 0 == b.value("refplat_audit_write_errors_total")


def check_deposed(a: Page) -> None:
    changes = a.by_label("refplat_controller_leader_changes_total", "event")
    assert (True, 0.0) == (1 <= changes["lost"], changes["acquired"] - changes["lost"])
    assert 1 <= a.value("refplat_controller_fencing_rejections_total")
    assert (0.0, 0.0) == (
        a.value("refplat_controller_is_leader"),
        a.value("refplat_controller_ttl_prune_lag_seconds"),
    )
    census = ("refplat_game_servers", "refplat_sessions", "refplat_node_heartbeat_age_seconds")
    assert [] == [name for name in census if name in a.samples]


def check_agents(node1: Page, node2: Page) -> None:
    status_requests = [p.value("refplat_agent_status_requests_total") for p in (node1, node2)]
    assert 1 <= sum(status_requests)
    assert (0.0, True, 3.0) == (
        node1.value("refplat_agent_heartbeat_failures_total"),
        0 < node1.value("refplat_agent_heartbeats_total"),
        node1.value("refplat_agent_game_servers"),
    )


def test_every_component_exports_the_full_metric_set_and_promtool_finds_no_problem(
    cluster: Cluster, redis_url: str
) -> None:
    scraped = run_scenario(cluster, redis_url)
    pages = scraped.pages

    problems = {name: promtool_problems(page.text) for name, page in pages.items()}
    assert dict.fromkeys(pages, (0, "")) == problems
    alloc = pages["api"].by_label("refplat_api_allocation_duration_seconds_count", "outcome")
    assert {"created": 2.0, "existing": 1.0, "none": 1.0} == alloc
    assert 0 == pages["api"].value("refplat_audit_write_errors_total")
    check_leader(pages["b"], scraped.age_when_lost)
    check_deposed(pages["a"])
    check_agents(pages["node-1"], pages["node-2"])


def every_label_set() -> list[bytes]:
    """The three registries with every family holding a sample."""
    api, ctl, agent = ApiMetrics(), ControllerMetrics(), AgentMetrics()
    api.requests.labels(method="GET", route="/v1/servers", code="200").inc()
    api.duration.labels(route="/v1/servers").observe(0.01)
    api.rate_limited.labels(scope="token").inc()
    api.observe_allocation("created", 0.002)
    ctl.census.publish(
        Census(
            servers={GameServerState.READY: 2},
            sessions={SessionState.ACTIVE: 1},
            nodes={NodeState.LIVE: 1},
            heartbeat_age_s={"node-1": 0.4},
            ttl_prune_lag_s=0.1,
        )
    )
    return [generate_latest(m.registry) for m in (api, ctl, agent)]


def test_every_family_with_samples_is_promtool_clean() -> None:
    pages = every_label_set()

    assert [(0, "")] * 3 == [promtool_problems(page.decode()) for page in pages]


def test_a_census_drops_the_series_of_nodes_that_are_gone_and_clearing_drops_all() -> None:
    metrics = ControllerMetrics()
    census = Census(
        servers={},
        sessions={},
        nodes={NodeState.LIVE: 2},
        heartbeat_age_s={"node-1": 1.0, "node-2": 2.0},
        ttl_prune_lag_s=0.0,
    )
    metrics.census.publish(census)
    metrics.census.publish(
        Census(
            servers={},
            sessions={},
            nodes={NodeState.LIVE: 1},
            heartbeat_age_s={"node-1": 1.5},
            ttl_prune_lag_s=3.0,
        )
    )
    after_publish = parse(generate_latest(metrics.registry).decode())
    metrics.census.clear()
    after_clear = parse(generate_latest(metrics.registry).decode())

    assert {"node-1": 1.5} == after_publish.by_label("refplat_node_heartbeat_age_seconds", "node")
    assert {s.value: 0.0 for s in GameServerState} == after_publish.by_label(
        "refplat_game_servers", "state"
    )
    assert (3.0, 0.0) == (
        after_publish.value("refplat_controller_ttl_prune_lag_seconds"),
        after_clear.value("refplat_controller_ttl_prune_lag_seconds"),
    )
    gone = ("refplat_game_servers", "refplat_sessions", "refplat_node_heartbeat_age_seconds")
    assert [] == [name for name in gone if name in after_clear.samples]


def test_the_census_counts_sessions_by_state_and_the_lag_of_the_oldest_due_session(
    redis_url: str,
) -> None:
    async def body(store: Store) -> tuple[dict[SessionState, int], float, float, float | None]:
        ctl = controller(store)
        term = await lead(store)
        await ready_in_redis(store, ctl, term, 3)
        for i, ttl_s in enumerate((0.05, 0.05, 60.0)):
            await store.allocate(
                tenant="t1", region=None, session_id=f"s-{i}", ttl_s=ttl_s, idem_key=""
            )
        await store.end_session(session_id="s-1", tenant=None, reason=EndReason.COMPLETED)
        await asyncio.sleep(0.1)
        counts = await session_state_counts(store)
        lag = await ttl_prune_lag(store, now=await store.redis_time())
        await ctl.reconcile_pass(term)  # expires s-0; the gauge holds the lag at its start
        lag_after = await ttl_prune_lag(store, now=await store.redis_time())
        gauge = ctl.metrics.registry.get_sample_value("refplat_controller_ttl_prune_lag_seconds")
        return counts, lag, lag_after, gauge

    counts, lag, lag_after, gauge = with_store(redis_url, body)

    assert {SessionState.ACTIVE: 2, SessionState.ENDED: 1} == counts
    assert (True, True, 0.0) == (0.05 <= lag, gauge is not None and lag <= gauge, lag_after)
