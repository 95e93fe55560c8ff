"""Configuration files for the local target's off-the-shelf parts (pure text rendering)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import yaml

SCRAPE_INTERVAL_S = 1


@dataclass(frozen=True)
class ReplicaChecks:
    """How fast HAProxy gives up on a replica: health-check interval and timeout, checks
    failed in a row before it is down, and the connect timeout of a request."""

    inter: str = "500ms"
    timeout: str = "300ms"
    fall: int = 2
    connect_timeout: str = "250ms"


# The local target's: a cut-off replica is dropped within about a second.
FAST_FAILOVER = ReplicaChecks()


def haproxy_cfg(
    *,
    frontend: str,
    stats: str,
    backends: Sequence[tuple[str, str]],
    checks: ReplicaChecks = FAST_FAILOVER,
) -> str:
    """HAProxy in front of the API replicas, health-checking each on ``/readyz``.

    ``frontend`` and ``stats`` are ``host:port``; ``backends`` are ``(name, host:port)``.
    The stats listener also serves HAProxy's built-in Prometheus exporter on ``/metrics``.
    """
    servers = "\n".join(
        f"    server {name} {addr} check inter {checks.inter} fall {checks.fall} rise 2"
        for name, addr in backends
    )
    return f"""global
    maxconn 4096

defaults
    mode http
    # Replicas are one hop away: a connect that takes longer than this is a dead or cut-off
    # replica, and the request is retried on another one (redispatch) well within a client's
    # patience. A 2 s connect timeout made a partitioned replica cost probes their answer.
    timeout connect {checks.connect_timeout}
    timeout check {checks.timeout}
    timeout client 30s
    timeout server 30s
    option redispatch 1
    retries 2
    retry-on conn-failure empty-response response-timeout 503

frontend api
    bind {frontend}
    default_backend api_replicas

backend api_replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
{servers}

frontend stats
    bind {stats}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    http-request return status 200 content-type text/plain string ok if {{ path /healthz }}
"""


def blackbox_yml() -> str:
    """Blackbox exporter modules: an HTTP 2xx check and a TCP connect check, both short."""
    config = {
        "modules": {
            "http_2xx": {
                "prober": "http",
                "timeout": "900ms",
                "http": {"valid_status_codes": [200], "preferred_ip_protocol": "ip4"},
            },
            "tcp_connect": {
                "prober": "tcp",
                "timeout": "900ms",
                "tcp": {"preferred_ip_protocol": "ip4"},
            },
        }
    }
    return yaml.safe_dump(config, sort_keys=False)


def prometheus_yml(
    *,
    jobs: dict[str, Sequence[str]],
    blackbox: str,
    api_health_url: str,
    gameservers_sd_file: str,
) -> str:
    """Prometheus scraping every ``/metrics`` each second, plus blackbox probes.

    ``jobs`` maps a job name to ``host:port`` targets. Probes: ``probe-api`` checks the API's
    ``/healthz`` through the load balancer; ``probe-gameservers`` TCP-connects to every game
    server listed in ``gameservers_sd_file`` (file service discovery, rewritten by the harness).
    """
    relabel = [
        {"source_labels": ["__address__"], "target_label": "__param_target"},
        {"source_labels": ["__param_target"], "target_label": "instance"},
        {"target_label": "__address__", "replacement": blackbox},
    ]
    scrape_configs: list[dict[str, object]] = [
        {"job_name": name, "static_configs": [{"targets": list(targets)}]}
        for name, targets in jobs.items()
    ]
    scrape_configs += [
        {
            "job_name": "probe-api",
            "metrics_path": "/probe",
            "params": {"module": ["http_2xx"]},
            "static_configs": [{"targets": [api_health_url]}],
            "relabel_configs": relabel,
        },
        {
            "job_name": "probe-gameservers",
            "metrics_path": "/probe",
            "params": {"module": ["tcp_connect"]},
            "file_sd_configs": [{"files": [gameservers_sd_file], "refresh_interval": "1s"}],
            "relabel_configs": relabel,
        },
    ]
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
            "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
        },
        "scrape_configs": scrape_configs,
    }
    return yaml.safe_dump(config, sort_keys=False)
