"""YAML loading keeps the line of every key and item, and reports syntax errors by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.util.errors import ConfigError
from harness.util.yamlsrc import dotted, load_yaml, parse_yaml

DOCUMENT = """\
name: demo
topology:
  api_replicas: 2
experiments:
  - a.yaml
  - b.yaml
"""


@pytest.mark.parametrize(
    ("path", "line"),
    [
        pytest.param(("name",), 1, id="top-level key"),
        pytest.param(("topology", "api_replicas"), 3, id="nested key"),
        pytest.param(("experiments", 1), 6, id="sequence item"),
        pytest.param(("topology", "missing"), 2, id="unknown path falls back to its parent"),
    ],
)
def test_every_key_and_item_remembers_its_line(path: tuple[str | int, ...], line: int) -> None:
    source = parse_yaml(DOCUMENT, origin="demo.yaml")

    assert line == source.line_of(path)


def test_the_data_is_plain_python() -> None:
    source = parse_yaml(DOCUMENT, origin="demo.yaml")

    expected = {
        "name": "demo",
        "topology": {"api_replicas": 2},
        "experiments": ["a.yaml", "b.yaml"],
    }
    assert expected == source.data


def test_a_syntax_error_names_the_file_and_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml("a: 1\nb: [1, 2\nc: 3\n", origin="broken.yaml")

    assert str(caught.value).startswith("broken.yaml:3: YAML syntax error")


def test_a_duplicate_key_is_an_error_on_its_second_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_yaml("a: 1\nb: 2\na: 3\n", origin="dup.yaml")

    assert ["dup.yaml:3: field 'a': duplicate key; keep only one of them."] == caught.value.problems


def test_an_empty_file_is_none() -> None:
    assert parse_yaml("# nothing\n", origin="empty.yaml").data is None


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_yaml(tmp_path / "absent.yaml")


def test_paths_are_written_with_dots_and_indexes() -> None:
    assert "slos[2].indicator.kind" == dotted(("slos", 2, "indicator", "kind"))
