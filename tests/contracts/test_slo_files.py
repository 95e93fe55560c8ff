"""Every SLO file in slos/ loads and validates against slos/schema.json.

jsonschema is not a dependency, so a small validator below covers the keywords the schema uses
(and fails loudly on any other, so the schema cannot silently outgrow it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.slo import load_slo_file
from harness.util.errors import ConfigError
from harness.util.yamlsrc import load_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "slos/schema.json"
SLO_FILES = sorted((REPO_ROOT / "slos").glob("*.yaml"))
_ANNOTATIONS = {"$schema", "$id", "title", "description", "default", "$defs"}
_TYPES = {"object": dict, "array": list, "string": str}


def validate(value: Any, schema: dict[str, Any], root: dict[str, Any], at: str = "$") -> list[str]:
    """Return where ``value`` breaks ``schema`` (a subset of JSON Schema 2020-12)."""
    if "$ref" in schema:
        target = root["$defs"][schema["$ref"].removeprefix("#/$defs/")]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return validate(value, target, root, at) + validate(value, rest, root, at)
    errors: list[str] = []
    for key, rule in schema.items():
        if key == "additionalProperties":
            extra = sorted(set(value) - set(schema.get("properties", {})))
            errors += [f"{at}: unexpected keys {extra}"] if rule is False and extra else []
        else:
            errors += _keyword(key, rule, value, root, at)
    return errors


def _keyword(key: str, rule: Any, value: Any, root: dict[str, Any], at: str) -> list[str]:
    if key in _ANNOTATIONS:
        return []
    if key == "type":
        ok = _is_number(value) if rule == "number" else isinstance(value, _TYPES[rule])
        return [] if ok else [f"{at}: not of type {rule}"]
    if key in ("required", "minItems", "minLength", "pattern", "minimum"):
        return [] if _simple(key, rule, value) else [f"{at}: fails {key}={rule!r}"]
    if key in ("enum", "const"):
        allowed = rule if key == "enum" else [rule]
        return [] if value in allowed else [f"{at}: {value!r} not in {allowed}"]
    if key == "properties":
        return [
            error
            for name, sub in rule.items()
            if name in value
            for error in validate(value[name], sub, root, f"{at}.{name}")
        ]
    if key == "items":
        return [
            error
            for i, item in enumerate(value)
            for error in validate(item, rule, root, f"{at}[{i}]")
        ]
    if key == "oneOf":
        passing = [sub for sub in rule if not validate(value, sub, root, at)]
        return [] if len(passing) == 1 else [f"{at}: matches {len(passing)} branches of oneOf"]
    raise AssertionError(f"the test validator does not know the keyword {key!r}; extend it")


def _simple(key: str, rule: Any, value: Any) -> bool:
    match key:
        case "required":
            return all(k in value for k in rule)
        case "minItems" | "minLength":
            return bool(len(value) >= rule)
        case "pattern":
            return re.search(rule, value) is not None
        case _:
            return _is_number(value) and bool(value >= rule)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return loaded


def test_the_schema_is_json_schema_2020_12() -> None:
    assert "https://json-schema.org/draft/2020-12/schema" == schema()["$schema"]


def test_there_is_at_least_the_smoke_slo_file() -> None:
    assert REPO_ROOT / "slos/smoke.yaml" in SLO_FILES


@pytest.mark.parametrize("path", SLO_FILES, ids=[p.name for p in SLO_FILES])
def test_every_slo_file_loads(path: Path) -> None:
    assert load_slo_file(path)


@pytest.mark.parametrize("path", SLO_FILES, ids=[p.name for p in SLO_FILES])
def test_every_slo_file_validates_against_the_schema(path: Path) -> None:
    assert [] == validate(load_yaml(path).data, schema(), schema())


def test_the_schema_rejects_what_the_loader_rejects(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "slos:\n  - name: x\n    indicator: {kind: threshold, promql: 'max(y)'}\n"
        "    objective: 1\n    comparator: '=='\n"
    )

    with pytest.raises(ConfigError):
        load_slo_file(path)
    assert 2 == len(validate(load_yaml(path).data, schema(), schema()))
