"""YAML documents that remember where each value came from, so errors can name file and line.

A document is loaded with PyYAML's safe loader in two steps: compose the node graph (which keeps
marks), then convert it to plain data while recording, for every mapping key and sequence item,
the 1-based line it was written on. Paths are tuples of keys and indexes: ``("topology",
"api_replicas")`` or ``("experiments", 0)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import yaml

from harness.util.errors import ConfigError

YamlPath: TypeAlias = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlSource:
    """Plain data loaded from one YAML document, with the line of every key and item."""

    origin: str
    data: object
    lines: Mapping[YamlPath, int] = field(default_factory=dict)

    def line_of(self, path: YamlPath) -> int:
        """Return the line of ``path``, or of its nearest recorded ancestor, or 1."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(path[:cut])
            if line is not None:
                return line
        return 1

    def where(self, path: YamlPath) -> str:
        """Return ``origin:line`` for ``path``, ready to start an error message."""
        return f"{self.origin}:{self.line_of(path)}"


def dotted(path: YamlPath) -> str:
    """Return ``path`` written as ``a.b[0].c``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def load_yaml(path: Path, *, origin: str | None = None) -> YamlSource:
    """Load the YAML file at ``path``; ``origin`` is how messages name it (default: the path)."""
    name = origin if origin is not None else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"{name}: cannot read the file ({exc.strerror}); check the path."
        ) from exc
    return parse_yaml(text, origin=name)


def parse_yaml(text: str, *, origin: str) -> YamlSource:
    """Parse one YAML document from ``text``; syntax errors become ConfigError with a line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlSource(origin=origin, data=None)
        converter = _Converter(loader, origin)
        data = converter.convert(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(
            f"{origin}:{line}: YAML syntax error: {problem}; fix the syntax and run again."
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: YAML error: {exc}; fix the file and run again.") from exc
    finally:
        loader.dispose()
    if converter.problems:
        raise ConfigError(converter.problems)
    return YamlSource(origin=origin, data=data, lines=converter.lines)


class _Converter:
    """Turns composed nodes into plain data and records the line of every key and item."""

    def __init__(self, loader: yaml.SafeLoader, origin: str) -> None:
        self.loader = loader
        self.origin = origin
        self.lines: dict[YamlPath, int] = {}
        self.problems: list[str] = []

    def convert(self, node: yaml.Node, path: YamlPath) -> object:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self._item(item, (*path, i)) for i, item in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)

    def _item(self, node: yaml.Node, path: YamlPath) -> object:
        self.lines[path] = node.start_mark.line + 1
        return self.convert(node, path)

    def _mapping(self, node: yaml.MappingNode, path: YamlPath) -> dict[object, object]:
        self.loader.flatten_mapping(node)
        result: dict[object, object] = {}
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            child = (*path, key if isinstance(key, str) else str(key))
            if key in result:
                self.problems.append(
                    f"{self.origin}:{line}: field '{dotted(child)}': duplicate key; "
                    "keep only one of them."
                )
                continue
            self.lines[child] = line
            result[key] = self.convert(value_node, child)
        return result
