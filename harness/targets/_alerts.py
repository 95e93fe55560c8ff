"""Alerting on the local target: the platform's alert rules, Alertmanager, the alerts that fired.

The rules are the platform's own: ``platform/manifests/base/rules/refplat.rules.yaml`` is the
source (the PrometheusRule in ``../monitoring/prometheusrule.yaml`` carries the same groups, a
contract test keeps them equal). The local target renders it for a run that lasts minutes:

- every alert's ``for:`` is divided by :data:`FOR_SCALE` (20), and is at least
  :data:`MIN_FOR_S` (3 s, three scrapes), so an alert that pages after 2 min of a fault in
  production fires after 6 s of it here, and a probe that is late once still does not;
- a group's ``interval:`` is dropped, so recording rules are evaluated with the alerts at the
  global evaluation interval (1 s) instead of every 15 s.

Expressions, thresholds, range windows, labels and annotations are unchanged.

Alertmanager routes every alert, one group per label set, to a webhook receiver the target runs
(:mod:`harness.targets._alertsink`) which appends it to ``alerts.jsonl`` in the run directory;
:func:`fired_alerts` folds that file into one record per alert that fired.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Collection
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from harness.model import AlertRecord
from harness.targets import _alertsink
from harness.util.errors import ConfigError, InfraError
from harness.util.http import request
from harness.util.yamlsrc import load_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_SOURCE = REPO_ROOT / "platform" / "manifests" / "base" / "rules" / "refplat.rules.yaml"
FOR_SCALE = 20
MIN_FOR_S = 3.0
ALERTS_FILE = "alerts.jsonl"
RULES_FILE = "refplat.rules.yaml"

_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration (``90s``, ``1h30m``, ``500ms``); ValueError if not one."""
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a Prometheus duration such as 30s, 2m or 1h30m")
    return sum(int(n) * _UNIT_S[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """A Prometheus duration for ``seconds``: whole seconds as ``6s``, else milliseconds."""
    millis = round(seconds * 1000)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def scaled_for(text: str, *, scale: float = FOR_SCALE, min_s: float = MIN_FOR_S) -> str:
    """The local target's ``for:`` for a production one (see the module's docstring)."""
    return format_duration(max(parse_duration(text) / scale, min_s))


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def local_rules_yml(source: Path = RULES_SOURCE) -> str:
    """The rules file the local target's Prometheus loads, rendered from ``source``."""
    if not source.is_file():
        raise InfraError(
            f"{source}: the platform's alert rules are missing; the local target renders its "
            "rules from this file: run from a checkout of the repository."
        )
    doc = load_yaml(source, origin=_display(source))
    groups = doc.data.get("groups") if isinstance(doc.data, dict) else None
    if not isinstance(groups, list):
        raise ConfigError(f"{doc.where(())}: a rules file has a list of `groups:`.")
    rendered = []
    for g, group in enumerate(groups):
        if not isinstance(group, dict) or not isinstance(group.get("rules"), list):
            raise ConfigError(f"{doc.where(('groups', g))}: a group has a `rules:` list.")
        rules = []
        for r, source_rule in enumerate(group["rules"]):
            rule = dict(source_rule)
            if "for" in rule:
                try:
                    rule["for"] = scaled_for(str(rule["for"]))
                except ValueError as exc:
                    where = doc.where(("groups", g, "rules", r, "for"))
                    raise ConfigError(f"{where}: {exc}.") from exc
            rules.append(rule)
        rendered.append({k: v for k, v in group.items() if k != "interval"} | {"rules": rules})
    header = (
        f"# Rendered from {_display(source)} for the local target by\n"
        f"# harness.targets._alerts: every `for:` divided by {FOR_SCALE} (at least\n"
        f"# {MIN_FOR_S:g} s), group intervals dropped (the global evaluation interval applies).\n"
        "# Edit the source, not this file.\n"
    )
    return header + yaml.safe_dump({"groups": rendered}, sort_keys=False, width=100)


EMPTY_RULES = "groups: []\n"


def load_rules(
    prometheus_url: str, rules: Path, text: str, *, jobs: Collection[str], timeout_s: float
) -> None:
    """Give a running Prometheus its alert rules once it has scraped every target of ``jobs``.

    Prometheus starts with ``EMPTY_RULES`` in ``rules``: its first scrapes come seconds after it
    is ready (target discovery is throttled to every 5 s), and until then the platform's
    ``absent(...)`` rules would fire on targets that are only not scraped yet. Raise
    TimeoutError when a target is still unscraped at ``timeout_s``, InfraError when Prometheus
    rejects the rules.
    """
    deadline = time.monotonic() + timeout_s
    while unscraped := _unscraped(prometheus_url, jobs):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Prometheus at {prometheus_url} had not scraped {', '.join(unscraped)} "
                f"within {timeout_s:g} s"
            )
        time.sleep(0.2)
    rules.write_text(text)
    answer = request("POST", f"{prometheus_url}/-/reload", timeout_s=max(timeout_s, 5.0))
    if not answer.ok:
        raise InfraError(
            f"Prometheus at {prometheus_url} did not load {rules} "
            f"({answer.status or answer.error}: {answer.body.decode(errors='replace').strip()}); "
            "check the file with `promtool check rules`."
        )


def _unscraped(prometheus_url: str, jobs: Collection[str]) -> list[str]:
    """The jobs Prometheus has no target of yet and the targets it has not scraped yet."""
    answer = request("GET", f"{prometheus_url}/api/v1/targets?state=active", timeout_s=2.0)
    if not answer.ok:
        return [f"anything (no answer: {answer.status or answer.error})"]
    targets = answer.json()["data"]["activeTargets"]
    missing = set(jobs) - {str(t["labels"]["job"]) for t in targets}
    return [f"job {job}" for job in sorted(missing)] + [
        str(t["scrapeUrl"]) for t in targets if t["health"] == "unknown"
    ]


def alertmanager_yml(*, webhook_url: str) -> str:
    """Alertmanager: every alert its own group, notified within a second to ``webhook_url``.

    Resolved alerts are notified too, so the sink records when each alert ended.
    """
    config = {
        "route": {
            "receiver": "run-dir",
            "group_by": ["..."],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "run-dir",
                "webhook_configs": [
                    {"url": webhook_url, "send_resolved": True, "max_alerts": 0},
                ],
            }
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def alertmanager_argv(binary: str, *, config: Path, storage: Path, listen: str) -> list[str]:
    """Alertmanager alone (no cluster: its gossip port would clash between runs)."""
    return [
        binary,
        f"--config.file={config}",
        f"--storage.path={storage}",
        f"--web.listen-address={listen}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]


def sink_argv(*, listen: str, out: Path) -> list[str]:
    """The webhook receiver that appends notified alerts to ``out``."""
    return [sys.executable, str(Path(_alertsink.__file__)), "--listen", listen, "--out", str(out)]


FiredAlert = AlertRecord  # its labels include ``alertname``


def _instant(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def fired_alerts(path: Path) -> tuple[FiredAlert, ...]:
    """Fold the sink's ``alerts.jsonl`` at ``path`` into one record per alert, by start time.

    An alert is one label set from one start: the same alert firing again after it resolved is a
    second record. A missing file means no alert fired. A line that is not an alert (a torn last
    line of a killed sink) is skipped.
    """
    if not path.is_file():
        return ()
    alerts: dict[tuple[str, str], FiredAlert] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item: Any = json.loads(line)
            labels = {str(k): str(v) for k, v in item["labels"].items()}
            start = _instant(item["starts_at"])
            end = _instant(item["ends_at"]) if item["status"] == "resolved" else None
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        key = (json.dumps(labels, sort_keys=True), item["starts_at"])
        known = alerts.get(key)
        if known is not None and known.end is not None and end is None:
            continue  # a late repeat of a firing notification does not reopen a resolved alert
        alerts[key] = FiredAlert(
            name=labels.get("alertname", ""), start=start, end=end, labels=labels
        )
    return tuple(sorted(alerts.values(), key=lambda a: (a.start, a.name)))
