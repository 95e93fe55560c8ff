"""Configuration files for the local target's off-the-shelf parts (pure text rendering)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import yaml

SCRAPE_INTERVAL_S = 1


@dataclass(frozen=True)
class ReplicaChecks:
    """How fast HAProxy gives up on a replica: health-check interval and timeout, checks
    failed in a row before it is down, the connect timeout of a request, and how long a read
    (GET, HEAD) and a health request wait for an answer before they are retried elsewhere."""

    inter: str = "500ms"
    timeout: str = "300ms"
    fall: int = 2
    connect_timeout: str = "250ms"
    read_timeout: str = "2s"
    health_timeout: str = "300ms"


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
    # A request in flight when its replica is cut off waits for its answer until the server
    # timeout (a partition drops the established connection's packets; nothing resets it).
    # Reads are idempotent and answer in milliseconds: they give up on a silent replica after
    # {checks.read_timeout} and are retried on another one, health checks after
    # {checks.health_timeout}. Other methods are retried only when the connection failed, never
    # after the request may have been processed.
    http-request set-timeout server {checks.read_timeout} if {{ method GET HEAD }}
    http-request set-timeout server {checks.health_timeout} if {{ path /healthz /readyz }}
    http-request disable-l7-retry if !{{ method GET HEAD }}
{servers}

frontend stats
    bind {stats}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    http-request return status 200 content-type text/plain string ok if {{ path /healthz }}
"""


# The blackbox exporter's probe timeout is the module's, capped by Prometheus's scrape timeout
# minus this offset (its default, 0.5 s, would silently cut the 900 ms below to 500 ms).
BLACKBOX_TIMEOUT_OFFSET_S = 0.05


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
    api_probes: int = 1,
    locust: str | None = None,
    rule_files: Sequence[str] = (),
    alertmanagers: Sequence[str] = (),
    extra_scrape_configs: Sequence[dict[str, object]] = (),
) -> str:
    """Prometheus scraping every ``/metrics`` each second, plus blackbox probes.

    ``jobs`` maps a job name to ``host:port`` targets. Probes: ``probe-api`` checks the API's
    ``/healthz`` through the load balancer, as ``api_probes`` targets (``?probe=N``) that
    Prometheus scrapes at staggered offsets, so the job probes ``api_probes`` times a second:
    enough probes over a short run to resolve a 99.9 % objective's error budget.
    ``probe-gameservers`` TCP-connects to every game server listed in ``gameservers_sd_file``
    (file service discovery, rewritten by the harness).
    ``locust``: the ``host:port`` where the Locust master serves its metrics (job ``locust``);
    it is down, and ``up`` is 0, while no load runs.
    ``rule_files``: rules files to evaluate (each second); their alerts go to the
    ``alertmanagers`` (``host:port``). ``extra_scrape_configs``: whole scrape configs a target
    adds (e.g. its Kubernetes control plane: :func:`kube_control_plane_scrape_jobs`).
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
    if locust is not None:
        scrape_configs.append({"job_name": "locust", "static_configs": [{"targets": [locust]}]})
    scrape_configs += [
        {
            "job_name": "probe-api",
            "metrics_path": "/probe",
            "params": {"module": ["http_2xx"]},
            "static_configs": [{"targets": _probe_urls(api_health_url, api_probes)}],
            "relabel_configs": relabel,
        },
        {
            "job_name": "probe-gameservers",
            "metrics_path": "/probe",
            "params": {"module": ["tcp_connect"]},
            "file_sd_configs": [{"files": [gameservers_sd_file], "refresh_interval": "1s"}],
            "relabel_configs": relabel,
        },
        *extra_scrape_configs,
    ]
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
            "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
        },
        "scrape_configs": scrape_configs,
    }
    if rule_files:
        config["rule_files"] = list(rule_files)
    if alertmanagers:
        targets = [{"targets": list(alertmanagers)}]
        config["alerting"] = {"alertmanagers": [{"static_configs": targets}]}
    return yaml.safe_dump(config, sort_keys=False)


def _probe_urls(url: str, count: int) -> list[str]:
    if count <= 1:
        return [url]
    joiner = "&" if "?" in url else "?"
    return [f"{url}{joiner}probe={n}" for n in range(1, count + 1)]


def kube_control_plane_scrape_jobs(
    *,
    apiserver: str,
    ca_file: str | None,
    cert_file: str | None = None,
    key_file: str | None = None,
    token_file: str | None = None,
    insecure_skip_verify: bool = False,
    scheduler: str | None = None,
    controller_manager: str | None = None,
) -> list[dict[str, object]]:
    """Prometheus scrape jobs for a Kubernetes control plane's ``/metrics`` over TLS.

    ``apiserver``, ``scheduler``, ``controller_manager`` are ``host:port`` of each component's
    secure port (jobs ``kube-apiserver``, ``kube-scheduler``, ``kube-controller-manager``).
    Prometheus authenticates with a client certificate (``cert_file``, ``key_file``) or a bearer
    token (``token_file``) that may GET ``/metrics`` (e.g. group ``system:monitoring``); the
    apiserver's certificate is checked against ``ca_file`` (None: the system's roots, or not at
    all with ``insecure_skip_verify``, as a kubeconfig with ``insecure-skip-tls-verify`` asks).
    The scheduler and the controller-manager serve a self-signed certificate of their own (their
    ``--cert-dir``), which Prometheus cannot verify: it skips that check but still presents its
    credentials (they authorize them through the apiserver).
    """
    client: dict[str, object] = {}
    if cert_file and key_file:
        client = {"cert_file": cert_file, "key_file": key_file}
    auth: dict[str, object] = {}
    if token_file:
        auth = {"authorization": {"type": "Bearer", "credentials_file": token_file}}
    server_ca: dict[str, object] = {"ca_file": ca_file} if ca_file else {}
    if not ca_file and insecure_skip_verify:
        server_ca = {"insecure_skip_verify": True}
    jobs: list[dict[str, object]] = [
        {
            "job_name": "kube-apiserver",
            "scheme": "https",
            "tls_config": {**server_ca, **client},
            **auth,
            "static_configs": [{"targets": [apiserver]}],
        }
    ]
    for name, target in (
        ("kube-scheduler", scheduler),
        ("kube-controller-manager", controller_manager),
    ):
        if target is not None:
            jobs.append(
                {
                    "job_name": name,
                    "scheme": "https",
                    "tls_config": {"insecure_skip_verify": True, **client},
                    **auth,
                    "static_configs": [{"targets": [target]}],
                }
            )
    return jobs


def audit_key_file_text() -> str:
    """A fresh audit key file for refplat's ``--audit-key-file``: one key ``k1``, 256 random
    bits, in the format ``refplat audit keygen`` writes (``<key id>:<base64>``)."""
    return f"k1:{base64.b64encode(secrets.token_bytes(32)).decode()}\n"
