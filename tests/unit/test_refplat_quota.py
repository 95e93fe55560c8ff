"""World-file paths and the data directory (pure, on a temporary directory)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from refplat.datadir import DataDir, PathError, ShortBodyError, valid_path


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("level.dat", id="file"),
        pytest.param("world/region/r.0.0.mca", id="nested"),
        pytest.param("/".join(["d"] * 8), id="eight-deep"),
        pytest.param("a" * 100, id="long-component"),
    ],
)
def test_a_relative_path_of_plain_components_is_valid(path: str) -> None:
    assert path == valid_path(path)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("", id="empty"),
        pytest.param("../etc/passwd", id="dot-dot"),
        pytest.param("world/../../x", id="dot-dot-inside"),
        pytest.param("/etc/passwd", id="absolute"),
        pytest.param("world//x", id="empty-component"),
        pytest.param("world/", id="trailing-slash"),
        pytest.param(".hidden", id="hidden"),
        pytest.param("a\\b", id="backslash"),
        pytest.param("a b", id="space"),
        pytest.param("/".join(["d"] * 9), id="nine-deep"),
        pytest.param("a" * 101, id="component-too-long"),
        pytest.param("/".join(["a" * 50] * 4), id="path-too-long"),
        pytest.param("x\x00y", id="nul"),
    ],
)
def test_an_unsafe_path_is_refused(path: str) -> None:
    with pytest.raises(PathError):
        valid_path(path)


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_a_written_file_reads_back_and_replaces_the_old_content(tmp_path: Path) -> None:
    data = DataDir(tmp_path)

    async def body() -> bytes:
        await data.write(directory="n/gs/s", path="w/a", size=3, chunks=chunks_of(b"old"))
        await data.write(directory="n/gs/s", path="w/a", size=5, chunks=chunks_of(b"ne", b"wer"))
        return await data.read(directory="n/gs/s", path="w/a")

    assert b"newer" == asyncio.run(body())
    assert [tmp_path / "n/gs/s/w/a"] == [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.mark.parametrize(
    "parts",
    [pytest.param((b"ab",), id="short"), pytest.param((b"abc", b"de"), id="long")],
)
def test_a_body_of_the_wrong_length_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, parts: tuple[bytes, ...]
) -> None:
    data = DataDir(tmp_path)

    async def body() -> None:
        await data.write(directory="n/gs/s", path="a", size=1, chunks=chunks_of(b"x"))
        with pytest.raises(ShortBodyError):
            await data.write(directory="n/gs/s", path="a", size=4, chunks=chunks_of(*parts))

    asyncio.run(body())
    assert ["a"] == [p.name for p in (tmp_path / "n/gs/s").iterdir()]
    assert b"x" == (tmp_path / "n/gs/s/a").read_bytes()


def test_removing_a_session_deletes_its_tree_and_the_empty_parents_only(tmp_path: Path) -> None:
    data = DataDir(tmp_path)

    async def body() -> None:
        for session in ("s1", "s2"):
            await data.write(
                directory=f"n/gs/{session}", path="w/a", size=1, chunks=chunks_of(b"x")
            )
        await data.remove_session("n/gs/s1")

    asyncio.run(body())
    assert ["n/gs/s2/w/a"] == [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("a")]
    assert not (tmp_path / "n/gs/s1").exists()


def test_a_session_directory_outside_the_root_is_refused(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "root")
    with pytest.raises(PathError):
        asyncio.run(data.remove_session("../elsewhere"))
