"""Building a frozen dataclass tree from plain data, collecting every problem with its origin.

The raw data comes from several layers (profile file, environment, flags); ``origins`` says, for
each path, where its value was written (``profiles/smoke.yaml:4`` or ``environment variable
HARNESS_X``), so a message can send the user to the right place.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar

from harness.util.yamlsrc import YamlPath, dotted

T = TypeVar("T")

_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclass
class TreeBuilder:
    """Converts and checks raw values; ``problems`` collects one sentence per problem."""

    origins: Mapping[YamlPath, str]
    root: Path
    problems: list[str] = field(default_factory=list)

    def origin_of(self, path: YamlPath) -> str:
        """Return where ``path`` (or its nearest ancestor with a known origin) was written."""
        for cut in range(len(path), -1, -1):
            origin = self.origins.get(path[:cut])
            if origin is not None:
                return origin
        return "defaults"

    def problem(self, path: YamlPath, text: str) -> None:
        field_text = f" field '{dotted(path)}':" if path else ""
        self.problems.append(f"{self.origin_of(path)}:{field_text} {text}")

    def build(self, cls: type[T], raw: object, path: YamlPath = ()) -> T | None:
        """Return an instance of the dataclass ``cls`` from ``raw``, or None after problems."""
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            self.problem(path, f"expected a mapping, got {_show(raw)}; write 'key: value' lines.")
            return None
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        self._unknown_keys(raw, fields, path)
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        ok = True
        for name, spec in fields.items():
            if name not in raw:
                continue
            value = self._value(hints[name], raw[name], (*path, name), spec.metadata)
            ok = ok and value is not _BAD
            values[name] = value
        return cls(**values) if ok else None

    def _unknown_keys(
        self, raw: Mapping[Any, Any], fields: Mapping[str, dataclasses.Field[Any]], path: YamlPath
    ) -> None:
        for key in raw:
            if key in fields:
                continue
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(fields)}."
            self.problem((*path, str(key)), f"unknown key; {hint}")

    def _value(self, kind: Any, raw: object, path: YamlPath, meta: Mapping[str, Any]) -> Any:
        if dataclasses.is_dataclass(kind):
            built = self.build(typing.cast(type[Any], kind), raw, path)
            return _BAD if built is None else built
        if typing.get_origin(kind) is tuple:
            return self._sequence(typing.get_args(kind)[0], raw, path, meta)
        if isinstance(kind, UnionType):
            raise TypeError(f"settings field {dotted(path)} has an unsupported union type")
        return self._scalar(kind, raw, path, meta)

    def _sequence(self, item: Any, raw: object, path: YamlPath, meta: Mapping[str, Any]) -> Any:
        if not isinstance(raw, list):
            self.problem(path, f"expected a list, got {_show(raw)}; write '[a, b]' or '- a' lines.")
            return _BAD
        items = [self._value(item, value, (*path, i), meta) for i, value in enumerate(raw)]
        return _BAD if any(value is _BAD for value in items) else tuple(items)

    def _scalar(self, kind: Any, raw: object, path: YamlPath, meta: Mapping[str, Any]) -> Any:
        value = _coerce(kind, raw)
        if value is _BAD:
            word = _TYPE_WORDS.get(kind, "a path" if kind is Path else str(kind))
            self.problem(path, f"expected {word}, got {_show(raw)}; write {word} there.")
            return _BAD
        return value if self._checks(value, path, meta) else _BAD

    def _checks(self, value: Any, path: YamlPath, meta: Mapping[str, Any]) -> bool:
        ok = True
        if "minimum" in meta and value < meta["minimum"]:
            self.problem(path, f"must be ≥ {meta['minimum']}, got {value}; raise it.")
            ok = False
        if "above" in meta and value <= meta["above"]:
            self.problem(path, f"must be > {meta['above']}, got {value}; raise it.")
            ok = False
        if "choices" in meta and value not in meta["choices"]:
            choices = ", ".join(meta["choices"])
            self.problem(path, f"must be one of {choices}, got '{value}'; pick one of them.")
            ok = False
        if meta.get("exists") and not (self.root / value).exists():
            self.problem(
                path,
                f"file '{value}' does not exist under {self.root}; "
                "fix the path (it is relative to the repository root).",
            )
            ok = False
        return ok


class _Bad:
    """Marks a value that failed conversion (None is a legitimate value)."""


_BAD: Any = _Bad()


def _coerce(kind: Any, raw: object) -> Any:
    if kind is bool:
        return raw if isinstance(raw, bool) else _BAD
    if isinstance(raw, bool):
        return _BAD
    if kind is int:
        return raw if isinstance(raw, int) else _BAD
    if kind is float:
        return float(raw) if isinstance(raw, int | float) else _BAD
    if kind is str:
        return raw if isinstance(raw, str) else _BAD
    if kind is Path:
        return Path(raw) if isinstance(raw, str) and raw else _BAD
    raise TypeError(f"settings type {kind!r} is not supported")


def _show(raw: object) -> str:
    if isinstance(raw, Mapping):
        return "a mapping"
    if isinstance(raw, list):
        return "a list"
    if raw is None:
        return "nothing"
    return f"{raw!r} ({type(raw).__name__})"
