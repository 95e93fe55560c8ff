"""The local target's observability on the ``ops`` host: the blackbox exporter, Alertmanager
with its webhook receiver, and Prometheus with the platform's alert rules."""

from __future__ import annotations

from pathlib import Path

from harness.targets import _alerts, _configs
from harness.targets._localbase import LocalBase
from harness.targets._localtopo import HOST
from harness.util.net import free_port_outside_ephemeral

# The scrape jobs certification waits for before the load starts (refplat's, its probes).
PROMETHEUS_JOBS = (
    "refplat-api",
    "refplat-controller",
    "refplat-agent",
    "probe-api",
    "probe-gameservers",
)


class LocalObservability(LocalBase):
    """Starts the observability stack; where Locust serves its metrics for Prometheus."""

    @property
    def prometheus_jobs(self) -> tuple[str, ...]:
        """The jobs whose every target must be up before the load starts (a target whose
        Prometheus scrapes otherwise says which)."""
        return PROMETHEUS_JOBS

    def _extra_scrape_configs(self) -> list[dict[str, object]]:
        """Scrape configs a target adds to its Prometheus (none on the local target)."""
        return []

    def _extra_rule_files(self) -> list[str]:
        """Rules files a target adds to its Prometheus (none on the local target)."""
        return []

    def _start_observability(
        self,
        bins: dict[str, str],
        *,
        api_url: str,
        haproxy_stats: str,
        jobs: dict[str, list[str]],
    ) -> tuple[str, Path]:
        place = self._place("prometheus")
        host = place.address
        bb_port, prom_port = place.port("blackbox"), place.port("prometheus")
        bb_cfg = self.run_dir / "blackbox.yml"
        bb_cfg.write_text(_configs.blackbox_yml())
        self._start(
            "blackbox",
            [
                bins["prometheus-blackbox-exporter"],
                f"--config.file={bb_cfg}",
                f"--web.listen-address={host}:{bb_port}",
                f"--timeout-offset={_configs.BLACKBOX_TIMEOUT_OFFSET_S}",
            ],
            role="blackbox",
        )
        self._urls["blackbox"] = f"http://{host}:{bb_port}"
        # Alertmanager and its webhook receiver, which appends the alerts to alerts.jsonl.
        am_port, sink_port = place.port("alertmanager"), place.port("alert-sink")
        sink = f"http://{host}:{sink_port}"
        self._start(
            "alert-sink",
            _alerts.sink_argv(listen=f"{host}:{sink_port}", out=self.run_dir / _alerts.ALERTS_FILE),
            role="alert-sink",
        )
        am_cfg = self.run_dir / "alertmanager.yml"
        am_cfg.write_text(_alerts.alertmanager_yml(webhook_url=f"{sink}/alerts"))
        self._start(
            "alertmanager",
            _alerts.alertmanager_argv(
                bins["prometheus-alertmanager"],
                config=am_cfg,
                storage=self.run_dir / "alertmanager",
                listen=f"{host}:{am_port}",
            ),
            role="alertmanager",
        )
        self._urls |= {"alert-sink": sink, "alertmanager": f"http://{host}:{am_port}"}
        rules, rules_text = self.run_dir / _alerts.RULES_FILE, _alerts.local_rules_yml()
        rules.write_text(_alerts.EMPTY_RULES)  # until every target is scraped: see load_rules
        sd_file = self.run_dir / "gameservers.json"
        sd_file.write_text("[]")
        prom_cfg = self.run_dir / "prometheus.yml"
        # Locust runs in the root namespace; Prometheus reaches it over the fabric's root end.
        load_host = self.fabric.root_address if self.fabric is not None else HOST
        self.locust_metrics = (load_host, free_port_outside_ephemeral(load_host))
        prom_cfg.write_text(
            _configs.prometheus_yml(
                jobs={"haproxy": [haproxy_stats], **jobs},
                blackbox=f"{host}:{bb_port}",
                api_health_url=f"{api_url}/healthz",
                gameservers_sd_file=str(sd_file),
                api_probes=self.topology.api_probes,
                locust=f"{load_host}:{self.locust_metrics[1]}",
                rule_files=[str(rules), *self._extra_rule_files()],
                alertmanagers=[f"{host}:{am_port}"],
                extra_scrape_configs=self._extra_scrape_configs(),
            )
        )
        (self.run_dir / "prometheus").mkdir(exist_ok=True)
        self._start(
            "prometheus",
            [
                bins["prometheus"],
                f"--config.file={prom_cfg}",
                f"--storage.tsdb.path={self.run_dir / 'prometheus'}",
                f"--web.listen-address={host}:{prom_port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=7d",
                "--log.level=warn",
            ],
            role="prometheus",
        )
        prometheus_url = f"http://{host}:{prom_port}"
        self._urls["prometheus"] = prometheus_url
        self._await_http("blackbox", f"http://{host}:{bb_port}/-/healthy")
        self._await_http("alert-sink", f"{sink}/healthz")
        self._await_http("alertmanager", f"http://{host}:{am_port}/-/ready")
        self._await_http("prometheus", f"{prometheus_url}/-/ready")
        self._await(
            "prometheus",
            lambda t: _alerts.load_rules(
                prometheus_url,
                rules,
                rules_text,
                jobs=[
                    *(job for job, targets in jobs.items() if targets),
                    "probe-api",
                    *(str(c["job_name"]) for c in self._extra_scrape_configs()),
                ],
                timeout_s=t,
            ),
        )
        return prometheus_url, sd_file
