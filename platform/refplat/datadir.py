"""The data root of world files: ``<data-dir>/<node>/<server id>/<session id>/<path>``.

On the local target every process shares the machine's filesystem, so the api writes a
session's files straight into the directory of the node its server runs on. A write goes
to a temporary file beside the target and is renamed over it, so a reader sees the old or
the new content, never a mix, and a failed write leaves the old file. Each session has its
own directory, so deleting an ended session's files never touches the next session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

MAX_PATH_CHARS = 200
MAX_PATH_DEPTH = 8
COMPONENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")


class PathError(ValueError):
    """A world-file path that is not allowed."""


def valid_path(text: str) -> str:
    """``text`` if it is a safe relative path, else raise :class:`PathError` saying why.

    Allowed: at most 200 characters and 8 components separated by ``/``, each of letters,
    digits, ``.``, ``_`` and ``-``, not starting with ``.`` (so no ``..``, no hidden files).
    """
    parts = text.split("/")
    if not text or len(text) > MAX_PATH_CHARS or len(parts) > MAX_PATH_DEPTH:
        raise PathError(f"at most {MAX_PATH_CHARS} characters and {MAX_PATH_DEPTH} components")
    if not all(COMPONENT.match(part) for part in parts):
        raise PathError(
            "relative, components of letters, digits, '.', '_' or '-', none starting with '.'"
        )
    return text


class ShortBodyError(OSError):
    """The request body ended before (or went past) its declared length."""


class DataDir:
    """World files under one data root."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def file(self, directory: str, path: str) -> Path:
        """Where ``path`` of the session directory ``directory`` lives."""
        target = (self.root / directory / valid_path(path)).resolve()
        if not target.is_relative_to(self.root / directory):
            raise PathError("the path leaves the session's directory")
        return target

    async def write(
        self, *, directory: str, path: str, size: int, chunks: AsyncIterator[bytes]
    ) -> None:
        """Write exactly ``size`` bytes from ``chunks`` to ``path``, atomically."""
        target = self.file(directory, path)
        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            written = 0
            with await asyncio.to_thread(_create, temporary) as out:
                async for chunk in chunks:
                    written += len(chunk)
                    if written > size:
                        break
                    out.write(chunk)
            if written != size:
                raise ShortBodyError(f"expected {size} bytes, got {written}")
            await asyncio.to_thread(os.replace, temporary, target)
        finally:
            temporary.unlink(missing_ok=True)

    async def read(self, *, directory: str, path: str) -> bytes:
        """The content of ``path``."""
        return await asyncio.to_thread(self.file(directory, path).read_bytes)

    async def remove(self, *, directory: str, path: str) -> None:
        """Delete ``path`` (gone already is fine) and the directories it leaves empty."""
        target = self.file(directory, path)
        await asyncio.to_thread(target.unlink, missing_ok=True)
        self._prune(target.parent, stop=self.root / directory)

    async def remove_session(self, directory: str) -> None:
        """Delete a session's whole directory, and its server's and node's if left empty."""
        session_dir = (self.root / directory).resolve()
        if not session_dir.is_relative_to(self.root) or session_dir == self.root:
            raise PathError(f"session directory {directory!r} is not under the data root")
        await asyncio.to_thread(shutil.rmtree, session_dir, ignore_errors=True)
        self._prune(session_dir.parent, stop=self.root)

    @staticmethod
    def _prune(directory: Path, *, stop: Path) -> None:
        while directory != stop and directory.is_relative_to(stop):
            with contextlib.suppress(OSError):
                directory.rmdir()
                directory = directory.parent
                continue
            return


def _create(path: Path) -> BinaryIO:
    """Open a new file for writing, creating its directories (retried once: a concurrent
    delete may prune a directory it just emptied)."""
    for attempt in range(2):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return path.open("xb")
        except FileNotFoundError:
            if attempt:
                raise
    raise AssertionError("unreachable")
