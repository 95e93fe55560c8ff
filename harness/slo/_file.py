"""Loading SLO files (``slos/*.yaml``): every problem is reported at once, with file and line."""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from harness.slo._promql import promql_problems
from harness.slo._resolution import parse_duration
from harness.slo._spec import (
    WINDOW_EACH_FAULT,
    WINDOW_PLACEHOLDER,
    WINDOW_RUN,
    Comparator,
    Healthy,
    Indicator,
    IndicatorKind,
    Severity,
    SloSpec,
    Statistic,
)
from harness.util.errors import ConfigError
from harness.util.yamlsrc import YamlPath, YamlSource, dotted, load_yaml

_SLO_KEYS = ("name", "description", "indicator", "objective", "comparator", "window", "severity")
_REQUIRED = ("name", "indicator", "objective", "comparator")
# For each kind: the indicator keys it needs; "fault" is allowed on every kind.
_KIND_KEYS: dict[IndicatorKind, tuple[str, ...]] = {
    IndicatorKind.RATIO: ("good", "total"),
    IndicatorKind.THRESHOLD: ("promql",),
    IndicatorKind.PROBE_UPTIME: ("job",),
    IndicatorKind.SLICE_UPTIME: ("job",),
    IndicatorKind.RECOVERY_TIME: ("fault", "promql"),
    IndicatorKind.MTTR: ("fault", "promql", "within"),
    IndicatorKind.SESSIONS_PRESERVED: (),
}
_QUERY_KEYS = ("promql", "good", "total")
# Keys a kind may have besides its needed ones and "fault".
_OPTIONAL_KEYS: dict[IndicatorKind, tuple[str, ...]] = {
    IndicatorKind.SLICE_UPTIME: ("slice",),
    IndicatorKind.MTTR: ("consecutive", "statistic"),
}
_WITHIN_KEYS = ("comparator", "value")
_MTTR_WINDOWS = (WINDOW_RUN, WINDOW_EACH_FAULT)

E = TypeVar("E", bound=enum.StrEnum)
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")


def load_slo_file(path: Path, *, origin: str | None = None) -> tuple[SloSpec, ...]:
    """Load and check the SLO file at ``path``; raise ConfigError listing every problem."""
    source = load_yaml(path, origin=origin)
    checker = _Checker(source)
    specs = checker.file()
    if checker.problems:
        raise ConfigError(checker.problems)
    return specs


@dataclass
class _Checker:
    source: YamlSource
    problems: list[str] = field(default_factory=list)

    def problem(self, path: YamlPath, text: str) -> None:
        self.problems.append(f"{self.source.where(path)}: field '{dotted(path)}': {text}")

    def file(self) -> tuple[SloSpec, ...]:
        data = self.source.data
        if not isinstance(data, Mapping) or not isinstance(data.get("slos"), list):
            self.problems.append(
                f"{self.source.where(())}: expected a mapping with a list under 'slos'; "
                "start the file with 'slos:' followed by '- name: ...' items."
            )
            return ()
        self.unknown(data, ("slos",), ())
        specs = [self.slo(item, ("slos", i)) for i, item in enumerate(data["slos"])]
        if not specs:
            self.problem(("slos",), "the list is empty; declare at least one SLO.")
        self.duplicates(data["slos"])
        return tuple(spec for spec in specs if spec is not None)

    def unknown(self, raw: Mapping[Any, Any], known: tuple[str, ...], path: YamlPath) -> None:
        for key in raw:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = (
                    f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}."
                )
                self.problem((*path, str(key)), f"unknown key; {hint}")

    def duplicates(self, items: list[Any]) -> None:
        first: dict[str, int] = {}
        for i, item in enumerate(items):
            name = item.get("name") if isinstance(item, Mapping) else None
            if not isinstance(name, str):
                continue
            if name in first:
                line = self.source.line_of(("slos", first[name], "name"))
                self.problem(
                    ("slos", i, "name"),
                    f"duplicate SLO name '{name}' (first declared on line {line}); rename one.",
                )
            else:
                first[name] = i

    def slo(self, raw: object, path: YamlPath) -> SloSpec | None:
        if not isinstance(raw, Mapping):
            self.problem(path, "expected a mapping with name, indicator, objective, comparator.")
            return None
        count = len(self.problems)
        self.unknown(raw, _SLO_KEYS, path)
        for key in _REQUIRED:
            if key not in raw:
                self.problem((*path, key), f"missing; add '{key}:' to this SLO.")
        name = self.text(raw, "name", path, default="")
        if name and not _NAME.fullmatch(name):
            self.problem(
                (*path, "name"),
                f"'{name}' is not a valid SLO name; use lower-case letters, digits and '-'.",
            )
        description = self.text(raw, "description", path, default="")
        window = self.text(raw, "window", path, default="run")
        indicator = self.indicator(raw.get("indicator"), (*path, "indicator"))
        comparator = self.choice(Comparator, raw, "comparator", path)
        severity = self.choice(Severity, raw, "severity", path, default=Severity.GATE)
        objective = self.objective(raw, path, indicator)
        if indicator and indicator.kind is IndicatorKind.MTTR and window not in _MTTR_WINDOWS:
            self.problem(
                (*path, "window"),
                f"an mttr SLO is judged per injection of its fault, not over '{window}'; "
                "write 'each-fault' or leave 'window' out.",
            )
        if len(self.problems) > count or indicator is None or comparator is None:
            return None
        return SloSpec(
            name=name,
            description=description,
            indicator=indicator,
            objective=objective,
            comparator=comparator,
            window=window,
            severity=severity or Severity.GATE,
            source=self.source.where(path),
        )

    def text(self, raw: Mapping[str, Any], key: str, path: YamlPath, *, default: str) -> str:
        value = raw.get(key, default)
        if not isinstance(value, str) or (key in ("name", "window") and not value.strip()):
            self.problem((*path, key), f"expected a non-empty string, got {value!r}; write one.")
            return default
        return value

    def choice(
        self,
        choices: type[E],
        raw: Mapping[str, Any],
        key: str,
        path: YamlPath,
        default: E | None = None,
    ) -> E | None:
        if key not in raw:
            return default
        try:
            return choices(raw[key])
        except ValueError:
            allowed = ", ".join(member.value for member in choices)
            self.problem((*path, key), f"must be one of {allowed}, got {raw[key]!r}; pick one.")
            return None

    def objective(self, raw: Mapping[str, Any], path: YamlPath, ind: Indicator | None) -> float:
        value = raw.get("objective")
        if "objective" not in raw:
            return 0.0
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem((*path, "objective"), f"expected a number, got {value!r}; write one.")
            return 0.0
        if ind is not None and ind.kind.is_share and not 0 <= value <= 1:
            self.problem(
                (*path, "objective"),
                f"a {ind.kind} objective is a share between 0 and 1, got {value}; "
                "write 0.999 for 99.9 %.",
            )
        elif value < 0:
            self.problem((*path, "objective"), f"must be ≥ 0, got {value}; fix it.")
        return float(value)

    def indicator(self, raw: object, path: YamlPath) -> Indicator | None:
        if not isinstance(raw, Mapping):
            if raw is not None:
                self.problem(path, "expected a mapping such as {kind: threshold, promql: ...}.")
            return None
        kind = self.choice(IndicatorKind, raw, "kind", path)
        if "kind" not in raw:
            self.problem((*path, "kind"), "missing; add 'kind:' to the indicator.")
        if kind is None:
            return None
        needed = _KIND_KEYS[kind]
        optional = _OPTIONAL_KEYS.get(kind, ())
        self.unknown(raw, ("kind", "fault", *needed, *optional), path)
        values: dict[str, Any] = {}
        for key in dict.fromkeys(("fault", *needed)):
            if key not in raw:
                if key in needed:
                    self.problem((*path, key), f"missing; a {kind} indicator needs '{key}'.")
                continue
            if key == "within":
                continue  # a mapping: read by mttr()
            values[key] = self.text(raw, key, path, default="")
            if key in _QUERY_KEYS:
                self.query(values[key], (*path, key), kind)
        slice_s = self.slice(raw, path) if "slice" in optional else 0.0
        if kind is IndicatorKind.MTTR:
            values.update(self.mttr(raw, path))
        return Indicator(kind=kind, slice_s=slice_s, **values)

    def mttr(self, raw: Mapping[str, Any], path: YamlPath) -> dict[str, Any]:
        """Read ``within``, ``consecutive`` and ``statistic`` of an mttr indicator."""
        fields: dict[str, Any] = {"within": self.within(raw.get("within"), (*path, "within"))}
        count = raw.get("consecutive", 3)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            self.problem(
                (*path, "consecutive"),
                f"expected a whole number ≥ 1 of healthy samples in a row, got {count!r}; "
                "write one such as 3.",
            )
        else:
            fields["consecutive"] = count
        fields["statistic"] = self.choice(Statistic, raw, "statistic", path, Statistic.MAX)
        return {key: value for key, value in fields.items() if value is not None}

    def within(self, raw: object, path: YamlPath) -> Healthy | None:
        if raw is None:
            return None  # reported as missing
        if not isinstance(raw, Mapping):
            self.problem(path, "expected a mapping such as {comparator: '>=', value: 1}.")
            return None
        self.unknown(raw, _WITHIN_KEYS, path)
        for key in _WITHIN_KEYS:
            if key not in raw:
                self.problem((*path, key), f"missing; add '{key}:' to 'within'.")
        comparator = self.choice(Comparator, raw, "comparator", path)
        value = raw.get("value")
        if "value" in raw and (isinstance(value, bool) or not isinstance(value, int | float)):
            self.problem((*path, "value"), f"expected a number, got {value!r}; write one.")
            return None
        if comparator is None or value is None:
            return None
        return Healthy(comparator=comparator, value=float(value))

    def slice(self, raw: Mapping[str, Any], path: YamlPath) -> float:
        if "slice" not in raw:
            return 0.0
        seconds = parse_duration(raw["slice"])
        if seconds is None:
            self.problem(
                (*path, "slice"),
                f"expected a duration of at least 1 ms such as 5s, 1m or 500ms, "
                f"got {raw['slice']!r}; write one, or leave it out to use the scrape interval.",
            )
        return seconds or 0.0

    def query(self, query: str, path: YamlPath, kind: IndicatorKind) -> None:
        for text in promql_problems(query):
            self.problem(path, f"malformed PromQL: {text}; fix the query.")
        if kind in (IndicatorKind.RATIO, IndicatorKind.THRESHOLD) and (
            WINDOW_PLACEHOLDER not in query
        ):
            self.problem(
                path,
                f"a {kind} query must use {WINDOW_PLACEHOLDER} as its range "
                "(for example [$window]); add it.",
            )
        if kind is IndicatorKind.MTTR and WINDOW_PLACEHOLDER in query:
            self.problem(
                path,
                f"an mttr query is evaluated at every scrape interval and has no "
                f"{WINDOW_PLACEHOLDER}; use a fixed range such as [30s], or none.",
            )
