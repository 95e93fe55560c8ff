"""Scraping a cluster's control plane from the run's Prometheus, with the run's own credentials.

The kube target judges Kubernetes' own SLOs (``slos/kube.yaml``: mutating API call p99, pod
start-up p99) from the apiserver's and the scheduler's ``/metrics``. Prometheus reaches them
with what the admin kubeconfig of the run holds: its CA, its client certificate or its bearer
token, copied into the run's ``secrets`` directory (mode 0600) because the ``kubernetes`` client
keeps embedded certificates in temporary files. The apiserver's address comes from the
kubeconfig; the scheduler's and the controller-manager's are not in any kubeconfig, so a cluster
may publish them in the ConfigMap ``kube-system/gsharness-control-plane`` (``harness cluster
up`` and the kube tier's cluster do: keys ``kube-scheduler`` and ``kube-controller-manager``,
values ``host:port``). Without it only the apiserver is scraped, and an SLO on the scheduler's
metrics is refused before the run with the metric it lacks.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubernetes import client as k8s

from harness.targets._configs import kube_control_plane_scrape_jobs
from harness.targets._kubecluster import CALL_TIMEOUT_S, CONTROL_PLANE_ENDPOINTS
from harness.targets._localtopo import REPO_ROOT

log = logging.getLogger(__name__)

RULES = REPO_ROOT / "platform/manifests/base/rules/kube-control-plane.rules.yaml"


def control_plane_scrape_configs(api: k8s.ApiClient, secrets_dir: Path) -> list[dict[str, object]]:
    """Scrape configs for the apiserver of ``api`` (and its scheduler and controller-manager
    when the cluster publishes where they are), with credentials kept in ``secrets_dir``."""
    cfg: Any = api.configuration
    secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = _keep(cfg.ssl_ca_cert, secrets_dir / "kube-ca.crt")
    cert = _keep(cfg.cert_file, secrets_dir / "prometheus-kube.crt")
    key = _keep(cfg.key_file, secrets_dir / "prometheus-kube.key")
    token = None
    bearer = str((cfg.api_key or {}).get("authorization") or "")
    if bearer.startswith("Bearer "):
        token_path = secrets_dir / "prometheus-kube.token"
        token_path.touch(mode=0o600)
        token_path.write_text(bearer.removeprefix("Bearer ").strip())
        token = str(token_path)
    components = published_components(api)
    return kube_control_plane_scrape_jobs(
        apiserver=urlsplit(str(cfg.host)).netloc,
        ca_file=ca,
        cert_file=cert,
        key_file=key,
        token_file=token,
        insecure_skip_verify=not cfg.verify_ssl,
        scheduler=components.get("kube-scheduler"),
        controller_manager=components.get("kube-controller-manager"),
    )


def published_components(api: k8s.ApiClient) -> dict[str, str]:
    """``kube-scheduler``/``kube-controller-manager`` -> ``host:port``, when the cluster says."""
    try:
        found: Any = k8s.CoreV1Api(api).read_namespaced_config_map(
            CONTROL_PLANE_ENDPOINTS, "kube-system", _request_timeout=CALL_TIMEOUT_S
        )
    except k8s.ApiException as exc:
        log.warning(
            "the cluster does not publish its scheduler's metrics (ConfigMap kube-system/%s: "
            "HTTP %s); only the apiserver is scraped",
            CONTROL_PLANE_ENDPOINTS,
            exc.status,
        )
        return {}
    return {k: str(v) for k, v in (found.data or {}).items()}


def _keep(source: str | None, dest: Path) -> str | None:
    if not source:
        return None
    dest.touch(mode=0o600)
    shutil.copyfile(source, dest)
    return str(dest)
