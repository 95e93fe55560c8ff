"""The audit verifier: re-reads, decrypts and re-chains stored records and names each problem.

Input is the stored lines in storage order (archive segments by seq range, then the Redis
list), the chain point the log starts from (genesis, or the Redis archive base when no
archive is given), the head point, and checkpoints (segment start hashes, the Redis base)
whose hashes must match the chain. Each problem names the seq it is at:

- ``altered``: a line that is not a record, a record that fails AES-GCM authentication
  (any changed byte of ciphertext, seq, key id or prev), a record whose prev hash is not
  the hash of the record before it, or a checkpoint/head whose hash differs from the chain;
- ``removed``: a seq between the start and the head that no stored line claims;
- ``inserted``: a seq stored twice, or one outside (start, head];
- ``reordered``: a record stored after one with a higher seq.

One tampering is reported once: an altered record is not also reported as removed, and the
record after an altered one is not blamed for not chaining to it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from refplat.audit import AuditRecordError, ChainPoint, KeyRing, SealedRecord, unseal

SEQ_FIELD = re.compile(r'"seq"\s*:\s*(\d+)')


class ProblemKind(enum.StrEnum):
    """The kinds of tampering the verifier tells apart."""

    ALTERED = "altered"
    REMOVED = "removed"
    INSERTED = "inserted"
    REORDERED = "reordered"


@dataclass(frozen=True)
class StoredLine:
    """One stored record line and where it was read (for messages)."""

    where: str
    line: str


@dataclass(frozen=True)
class Checkpoint:
    """A chain point written beside the records (segment start, archive base, head)."""

    label: str
    point: ChainPoint


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the log, at one seq (None when no seq could be read)."""

    kind: ProblemKind
    seq: int | None
    message: str

    def line(self) -> str:
        """One printable line: ``<kind> seq <n>: <message>``."""
        return f"{self.kind.value} seq {self.seq if self.seq is not None else '?'}: {self.message}"


@dataclass(frozen=True)
class VerifyReport:
    """The verdict: every problem found, and how many records were read."""

    problems: tuple[Problem, ...]
    records: int

    @property
    def intact(self) -> bool:
        """Whether nothing is wrong."""
        return not self.problems


@dataclass(frozen=True)
class _Placed:
    stored: StoredLine
    record: SealedRecord


def verify(
    lines: Sequence[StoredLine],
    *,
    keys: KeyRing,
    start: ChainPoint,
    head: ChainPoint,
    checkpoints: Iterable[Checkpoint] = (),
) -> VerifyReport:
    """Check every stored line against the key ring and the chain from ``start`` to ``head``."""
    problems: list[Problem] = []
    parsed, unreadable = _parse(lines, problems)
    placed = _place(parsed, start=start, head=head, problems=problems)
    problems += _missing(set(placed) | unreadable, start=start, head=head)
    authentic = _authentic(placed, keys=keys, problems=problems)
    hashes = {seq: record.chain_hash() for seq, record in authentic.items()}
    hashes[start.seq] = start.hash
    problems += _broken_links(authentic, hashes)
    problems += _bad_checkpoints([*checkpoints, Checkpoint("head", head)], hashes)
    problems.sort(key=lambda p: (p.seq if p.seq is not None else -1, p.kind.value))
    return VerifyReport(problems=tuple(problems), records=len(lines))


def _parse(lines: Sequence[StoredLine], problems: list[Problem]) -> tuple[list[_Placed], set[int]]:
    parsed: list[_Placed] = []
    unreadable: set[int] = set()
    for stored in lines:
        try:
            parsed.append(_Placed(stored, SealedRecord.from_line(stored.line)))
        except AuditRecordError as exc:
            match = SEQ_FIELD.search(stored.line)
            seq = int(match.group(1)) if match else None
            if seq is not None:
                unreadable.add(seq)
            problems.append(Problem(ProblemKind.ALTERED, seq, f"{stored.where} is {exc}"))
    return parsed, unreadable


def _place(
    parsed: Sequence[_Placed], *, start: ChainPoint, head: ChainPoint, problems: list[Problem]
) -> dict[int, _Placed]:
    placed: dict[int, _Placed] = {}
    highest = start.seq
    for item in parsed:
        seq, where = item.record.seq, item.stored.where
        first = placed.get(seq)
        if first is not None:
            copy = (
                "an identical copy" if first.stored.line == item.stored.line else "a different one"
            )
            message = f"stored again at {where} ({copy}; first at {first.stored.where})"
            problems.append(Problem(ProblemKind.INSERTED, seq, message))
        elif not start.seq < seq <= head.seq:
            message = f"{where} lies outside the log's range {start.seq + 1}..{head.seq}"
            problems.append(Problem(ProblemKind.INSERTED, seq, message))
        else:
            if seq < highest:
                message = f"{where} is stored after seq {highest}"
                problems.append(Problem(ProblemKind.REORDERED, seq, message))
            highest = max(highest, seq)
            placed[seq] = item
    return placed


def _missing(present: set[int], *, start: ChainPoint, head: ChainPoint) -> list[Problem]:
    gaps: list[Problem] = []
    seq = start.seq + 1
    while seq <= head.seq:
        if seq in present:
            seq += 1
            continue
        end = seq
        while end + 1 <= head.seq and end + 1 not in present:
            end += 1
        what = f"seq {seq} is missing" if end == seq else f"seqs {seq}-{end} are missing"
        gaps.append(Problem(ProblemKind.REMOVED, seq, what))
        seq = end + 1
    return gaps


def _authentic(
    placed: dict[int, _Placed], *, keys: KeyRing, problems: list[Problem]
) -> dict[int, SealedRecord]:
    authentic: dict[int, SealedRecord] = {}
    for seq, item in placed.items():
        try:
            unseal(item.record, keys=keys)
        except AuditRecordError as exc:
            problems.append(Problem(ProblemKind.ALTERED, seq, f"{item.stored.where} {exc}"))
        else:
            authentic[seq] = item.record
    return authentic


def _broken_links(authentic: dict[int, SealedRecord], hashes: dict[int, bytes]) -> list[Problem]:
    broken: list[Problem] = []
    for seq, record in sorted(authentic.items()):
        expected = hashes.get(seq - 1)
        if expected is not None and record.prev != expected:
            message = f"its prev hash is not the chain hash of seq {seq - 1}"
            broken.append(Problem(ProblemKind.ALTERED, seq, message))
    return broken


def _bad_checkpoints(checkpoints: Sequence[Checkpoint], hashes: dict[int, bytes]) -> list[Problem]:
    bad: list[Problem] = []
    for checkpoint in checkpoints:
        expected = hashes.get(checkpoint.point.seq)
        if expected is not None and expected != checkpoint.point.hash:
            message = f"the {checkpoint.label} hash differs from the chain"
            bad.append(Problem(ProblemKind.ALTERED, checkpoint.point.seq, message))
    return bad
