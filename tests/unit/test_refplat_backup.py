"""Backup archives and manifests on real files: round trips, and corrupt backups refused."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from refplat.backup import (
    MANIFEST,
    Manifest,
    StateManifest,
    find_backup,
    list_backups,
    read_manifest,
)
from refplat.worldbackup import (
    BackupError,
    CorruptBackupError,
    NotEmptyError,
    WorldManifest,
    members,
    pack_server,
    server_dirs,
    sha256_of,
    unpack_server,
)

FILES = {
    "n1/gs-1/s-1/world/level.dat": b"level" * 100,
    "n1/gs-1/s-1/world/region/r.0.0.mca": bytes(range(256)) * 40,
    "n1/gs-1/s-2/server.properties": b"motd=hi\n",
    "n2/gs-2/s-3/empty.txt": b"",
}


def populate(root: Path) -> None:
    for rel, content in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "n1/gs-1/s-1/world/.level.dat.abc.tmp").write_bytes(b"in flight")
    (root / "backups/gs-1/b-1").mkdir(parents=True)


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def pack_all(root: Path, backup: Path, current: str | None = None) -> list[WorldManifest]:
    return [
        pack_server(
            root=root,
            node=node,
            server=server,
            directory=backup,
            archive=f"world/{node}--{server}.tar.gz",
            current=current,
        )
        for node, server in server_dirs(root)
    ]


def test_a_data_dir_round_trips_byte_equal_without_temporary_files_or_api_backups(
    tmp_path: Path,
) -> None:
    source, backup, target = tmp_path / "data", tmp_path / "backup", tmp_path / "restored"
    populate(source)

    packed = pack_all(source, backup)
    counts = [unpack_server(directory=backup, manifest=m, root=target, force=False) for m in packed]

    assert FILES == tree(target)
    assert [(3, 500 + 10240 + 8), (1, 0)] == counts
    assert [("n1", "gs-1"), ("n2", "gs-2")] == [(m.node, m.server) for m in packed]


def test_the_manifest_names_sessions_files_bytes_and_the_archive_hash(tmp_path: Path) -> None:
    source, backup = tmp_path / "data", tmp_path / "backup"
    populate(source)

    first = pack_all(source, backup, current="s-2")[0]

    expected = WorldManifest(
        server="gs-1",
        node="n1",
        sessions=("s-1", "s-2"),
        source="s-2",
        files=3,
        bytes=500 + 10240 + 8,
        archive="world/n1--gs-1.tar.gz",
        archive_bytes=(backup / "world/n1--gs-1.tar.gz").stat().st_size,
        sha256=sha256_of(backup / "world/n1--gs-1.tar.gz"),
    )
    assert expected == first
    assert first == WorldManifest.from_json(json.loads(json.dumps(first.to_json())), source="m")


def test_without_a_current_session_the_source_is_the_one_with_the_newest_file(
    tmp_path: Path,
) -> None:
    source, backup = tmp_path / "data", tmp_path / "backup"
    populate(source)
    newer = source / "n1/gs-1/s-1/world/level.dat"
    newer.touch()
    (source / "n1/gs-1/s-2/server.properties").touch()
    os.utime(source / "n1/gs-1/s-2/server.properties", (1, 1))

    assert "s-1" == pack_all(source, backup, current="s-gone")[0].source


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupted_archive_is_refused_naming_the_file_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    source, backup, target = tmp_path / "data", tmp_path / "backup", tmp_path / "restored"
    populate(source)
    manifest = pack_all(source, backup)[0]
    corrupt(backup / manifest.archive)

    with pytest.raises(CorruptBackupError) as caught:
        unpack_server(directory=backup, manifest=manifest, root=target, force=False)

    assert str(backup / manifest.archive) in str(caught.value)
    assert "corrupt" in str(caught.value)
    assert not target.exists()


def test_an_archive_with_an_unsafe_entry_is_refused_even_with_a_matching_hash(
    tmp_path: Path,
) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("s-1/../../../etc/evil")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    manifest = WorldManifest(
        server="gs-1",
        node="n1",
        sessions=("s-1",),
        source="s-1",
        files=1,
        bytes=4,
        archive="evil.tar.gz",
        archive_bytes=archive.stat().st_size,
        sha256=sha256_of(archive),
    )

    with pytest.raises(CorruptBackupError, match="unsafe entry"):
        members(tmp_path, manifest)


def test_restoring_over_a_server_directory_with_files_needs_force(tmp_path: Path) -> None:
    source, backup, target = tmp_path / "data", tmp_path / "backup", tmp_path / "restored"
    populate(source)
    manifest = pack_all(source, backup)[0]
    stale = target / "n1/gs-1/s-9/stale.dat"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"stale")

    with pytest.raises(NotEmptyError, match="--force"):
        unpack_server(directory=backup, manifest=manifest, root=target, force=False)
    unpack_server(directory=backup, manifest=manifest, root=target, force=True)

    assert {k: v for k, v in FILES.items() if k.startswith("n1/")} == tree(target)


def write_backup(directory: Path, backup_id: str, created_at: float) -> Manifest:
    manifest = Manifest(
        id=backup_id,
        created_at=created_at,
        seconds=0.25,
        state=StateManifest(file="state.jsonl.gz", keys=3, bytes=100, sha256="0" * 64),
    )
    (directory / backup_id).mkdir(parents=True)
    manifest.write(directory / backup_id)
    return manifest


def test_manifests_round_trip_and_list_oldest_first_and_the_newest_is_restored(
    tmp_path: Path,
) -> None:
    newer = write_backup(tmp_path, "b-2", created_at=2000.0)
    older = write_backup(tmp_path, "b-1", created_at=1000.0)

    assert [older, newer] == list_backups(tmp_path)
    assert newer == read_manifest(tmp_path / "b-2")
    assert (tmp_path / "b-2", tmp_path / "b-1") == (
        find_backup(tmp_path),
        find_backup(tmp_path, "b-1"),
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "has no manifest.json"),
        ("{not json", "unreadable"),
        ('{"format": "other", "version": 1}', "not a refplat-backup version 1"),
        ('{"format": "refplat-backup", "version": 1, "id": "b"}', "unreadable"),
    ],
    ids=["missing", "not-json", "wrong-format", "missing-fields"],
)
def test_a_bad_manifest_is_refused_naming_the_problem(
    tmp_path: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (tmp_path / MANIFEST).write_text(content)

    with pytest.raises(BackupError, match=message):
        read_manifest(tmp_path)


def test_a_missing_directory_or_backup_id_is_named(tmp_path: Path) -> None:
    write_backup(tmp_path, "b-1", created_at=1.0)

    with pytest.raises(BackupError, match="does not exist"):
        list_backups(tmp_path / "nope")
    with pytest.raises(BackupError, match="holds backup b-9"):
        find_backup(tmp_path, "b-9")
