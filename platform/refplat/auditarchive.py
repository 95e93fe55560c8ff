"""Audit archive: snapshots of the Redis log, compressed segment files, and whole-log checks.

``archive`` moves every record in the Redis list into one gzip-compressed JSON-lines segment
``audit-<first>-<last>.jsonl.gz`` (seqs zero-padded to 12 digits, so names sort by seq). Its
first line is a header ``{"first", "last", "start", "type"}`` where ``start`` is the chain
point (``seq:hexhash``) the segment continues from; the chain runs on unbroken across
segments. The archiver first verifies what it moves (it refuses to seal a tampered range),
writes the segment to a temporary file, fsyncs it, renames it into place and fsyncs the
directory; only then does one Lua script trim exactly those records from the list and move
``base`` to the segment's last point, provided ``base`` and the last archived line are still
what it read (else it removes its segment and reports the race). Appends continue meanwhile.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from refplat.audit import START, ChainPoint, KeyRing, SealedRecord
from refplat.auditlog import BASE_KEY, HEAD_KEY, LOG_KEY
from refplat.auditverify import Checkpoint, Problem, ProblemKind, StoredLine, VerifyReport, verify

SEGMENT_TYPE = "refplat-audit-segment"

TRIM = """
local base = redis.call('GET', KEYS[1])
if (base or '') ~= ARGV[1] then return 0 end
if redis.call('LINDEX', KEYS[2], tonumber(ARGV[2]) - 1) ~= ARGV[3] then return 0 end
redis.call('LTRIM', KEYS[2], tonumber(ARGV[2]), -1)
redis.call('SET', KEYS[1], ARGV[4])
return 1
"""


class ArchiveError(RuntimeError):
    """The archive could not be written or the Redis list could not be trimmed."""


@dataclass(frozen=True)
class RedisSnapshot:
    """The Redis side of the log, read in one transaction."""

    base_text: str
    base: ChainPoint
    head: ChainPoint
    lines: tuple[str, ...]
    problems: tuple[Problem, ...] = ()

    def stored(self) -> list[StoredLine]:
        """The list's lines, labelled ``redis[i]``."""
        return [StoredLine(f"redis[{i}]", line) for i, line in enumerate(self.lines)]


def read_snapshot(client: redis.Redis) -> RedisSnapshot:
    """Base, head and every list line, consistent with each other."""
    with client.pipeline(transaction=True) as pipe:
        pipe.get(BASE_KEY)
        pipe.get(HEAD_KEY)
        pipe.lrange(LOG_KEY, 0, -1)
        base, head, lines = pipe.execute()
    problems: list[Problem] = []
    return RedisSnapshot(
        base_text=base or "",
        base=_point(base, label="base", problems=problems),
        head=_point(head, label="head", problems=problems),
        lines=tuple(str(line) for line in lines),
        problems=tuple(problems),
    )


def _point(text: str | None, *, label: str, problems: list[Problem]) -> ChainPoint:
    try:
        return ChainPoint.parse(text)
    except ValueError as exc:
        problems.append(Problem(ProblemKind.ALTERED, None, f"the redis audit {label}: {exc}"))
        return START


def segment_name(first: int, last: int) -> str:
    """The file name of the segment holding seqs ``first..last``."""
    return f"audit-{first:012d}-{last:012d}.jsonl.gz"


def write_segment(directory: Path, *, start: ChainPoint, lines: Sequence[str]) -> Path:
    """Write, fsync and rename one segment into ``directory``; return its path."""
    first, last = start.seq + 1, start.seq + len(lines)
    header = {"first": first, "last": last, "start": start.text(), "type": SEGMENT_TYPE}
    body = "".join(f"{line}\n" for line in [json.dumps(header, sort_keys=True), *lines])
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / segment_name(first, last)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(body.encode())
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def read_segments(directory: Path) -> tuple[list[StoredLine], list[Checkpoint], list[Problem]]:
    """Every segment's lines (in name order), start checkpoints, and unreadable files."""
    lines: list[StoredLine] = []
    checkpoints: list[Checkpoint] = []
    problems: list[Problem] = []
    for path in sorted(directory.glob("audit-*.jsonl.gz")):
        try:
            header_line, *records = gzip.decompress(path.read_bytes()).decode().splitlines()
            header = json.loads(header_line)
            start = ChainPoint.parse(str(header["start"]))
        except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
            message = f"segment {path.name} cannot be read: {exc}"
            problems.append(Problem(ProblemKind.ALTERED, None, message))
            continue
        checkpoints.append(Checkpoint(f"segment {path.name} start", start))
        lines += [StoredLine(f"{path.name}:{i}", line) for i, line in enumerate(records, 2)]
    return lines, checkpoints, problems


def verify_log(client: redis.Redis, *, keys: KeyRing, archive: Path | None) -> VerifyReport:
    """Verify the archive (when given, from genesis) and then the Redis list up to the head."""
    snapshot = read_snapshot(client)
    lines: list[StoredLine] = []
    checkpoints: list[Checkpoint] = []
    problems: list[Problem] = []
    start = snapshot.base
    if archive is not None:
        lines, checkpoints, problems = read_segments(archive)
        checkpoints.append(Checkpoint("redis archive base", snapshot.base))
        start = START
    report = verify(
        [*lines, *snapshot.stored()],
        keys=keys,
        start=start,
        head=snapshot.head,
        checkpoints=checkpoints,
    )
    found = (*snapshot.problems, *problems, *report.problems)
    return VerifyReport(problems=found, records=report.records)


def archive(client: redis.Redis, *, keys: KeyRing, directory: Path) -> tuple[Path | None, int]:
    """Move the Redis list into a new segment; return its path (None if empty) and size."""
    snapshot = read_snapshot(client)
    if not snapshot.lines:
        return None, 0
    report = verify(snapshot.stored(), keys=keys, start=snapshot.base, head=snapshot.head)
    if snapshot.problems or not report.intact:
        found = "; ".join(p.line() for p in (*snapshot.problems, *report.problems))
        raise ArchiveError(f"refusing to archive a log that fails verification: {found}")
    last = SealedRecord.from_line(snapshot.lines[-1])
    path = write_segment(directory, start=snapshot.base, lines=snapshot.lines)
    new_base = ChainPoint(seq=last.seq, hash=last.chain_hash())
    args = [snapshot.base_text, str(len(snapshot.lines)), snapshot.lines[-1], new_base.text()]
    if not client.eval(TRIM, 2, BASE_KEY, LOG_KEY, *args):
        path.unlink()
        raise ArchiveError("another archiver moved the audit base meanwhile; run archive again")
    return path, len(snapshot.lines)
