"""Audit records, the chain and the verifier, in memory."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refplat.audit import (
    START,
    AuditEvent,
    AuditRecordError,
    ChainPoint,
    KeyRing,
    SealedRecord,
    new_key_line,
    seal,
    unseal,
)
from refplat.auditverify import StoredLine, verify

KEYS = KeyRing.parse(new_key_line(key_id="k1"), source="test")
ROTATED = KeyRing.parse(f"{new_key_line(key_id='k1')}\n{new_key_line(key_id='k2')}", source="t")


def event(seq: int) -> AuditEvent:
    return AuditEvent(
        seq=seq,
        time=1700000000.5 + seq,
        actor="tenant:t-1",
        action="server.create",
        object_id=f"gs-{seq}",
        details={"region": "local"},
    )


def chain(count: int, *, keys: KeyRing = KEYS, rotate_at: int = 0) -> list[SealedRecord]:
    """``count`` chained records; from seq ``rotate_at`` on, sealed under the newest key."""
    records: list[SealedRecord] = []
    prev = START.hash
    for seq in range(1, count + 1):
        ring = keys
        if rotate_at and seq < rotate_at:
            ring = dataclasses.replace(keys, current=next(iter(keys.keys)))
        record = seal(event(seq), keys=ring, prev=prev)
        records.append(record)
        prev = record.chain_hash()
    return records


def head_of(records: list[SealedRecord]) -> ChainPoint:
    return ChainPoint(seq=records[-1].seq, hash=records[-1].chain_hash())


def problems_of(
    lines: list[str], *, head: ChainPoint, keys: KeyRing = KEYS
) -> list[tuple[str, int | None]]:
    stored = [StoredLine(f"line {i}", line) for i, line in enumerate(lines)]
    report = verify(stored, keys=keys, start=START, head=head)
    return [(p.kind.value, p.seq) for p in report.problems]


def test_a_sealed_event_opens_to_the_same_event() -> None:
    record = seal(event(7), keys=KEYS, prev=START.hash)

    assert event(7) == unseal(SealedRecord.from_line(record.to_line()), keys=KEYS)


def test_the_stored_line_holds_no_plaintext() -> None:
    line = seal(event(1), keys=KEYS, prev=START.hash).to_line()

    assert ("gs-1" in line, "tenant" in line) == (False, False)


def test_a_record_moved_to_another_seq_fails_authentication() -> None:
    record = seal(event(3), keys=KEYS, prev=START.hash)

    with pytest.raises(AuditRecordError):
        unseal(dataclasses.replace(record, seq=4), keys=KEYS)


def test_an_intact_chain_verifies_with_no_problems() -> None:
    records = chain(5)

    assert [] == problems_of([r.to_line() for r in records], head=head_of(records))


def test_records_under_an_old_key_verify_after_rotation() -> None:
    records = chain(6, keys=ROTATED, rotate_at=4)

    assert ["k1", "k1", "k1", "k2", "k2", "k2"] == [r.kid for r in records]
    assert [] == problems_of([r.to_line() for r in records], head=head_of(records), keys=ROTATED)


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        pytest.param([1, 2, 4, 5], [("removed", 3)], id="removed"),
        pytest.param([1, 2, 3, 4], [("removed", 5)], id="tail-removed"),
        pytest.param([1, 2, 3, 3, 4, 5], [("inserted", 3)], id="duplicated"),
        pytest.param([1, 3, 2, 4, 5], [("reordered", 2)], id="swapped"),
    ],
)
def test_a_removed_duplicated_or_swapped_record_is_named_at_its_seq(
    order: list[int], expected: list[tuple[str, int]]
) -> None:
    records = chain(5)

    actual = problems_of([records[seq - 1].to_line() for seq in order], head=head_of(records))

    assert expected == actual


def test_a_record_from_another_chain_is_named_altered() -> None:
    records, other = chain(3), chain(3)
    lines = [records[0].to_line(), other[1].to_line(), records[2].to_line()]

    assert [("altered", 2), ("altered", 3)] == problems_of(lines, head=head_of(records))


def test_a_line_that_is_not_a_record_is_named_altered_at_its_seq() -> None:
    records = chain(3)
    lines = [r.to_line() for r in records]
    lines[1] = lines[1].replace('"ct":"', '"ct":"!')

    assert [("altered", 2)] == problems_of(lines, head=head_of(records))


def test_a_record_under_an_unknown_key_is_named_altered() -> None:
    records = chain(2)
    other_keys = KeyRing.parse(new_key_line(key_id="k9"), source="test")

    assert [("altered", 1), ("altered", 2)] == problems_of(
        [r.to_line() for r in records], head=head_of(records), keys=other_keys
    )


RECORDS = chain(4)


@given(
    index=st.integers(min_value=0, max_value=len(RECORDS) - 1),
    offset=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_single_byte_flip_in_a_ciphertext_is_detected_at_that_seq(
    index: int, offset: int, flip: int
) -> None:
    target = RECORDS[index]
    ct = bytearray(target.ct)
    ct[offset % len(ct)] ^= flip
    lines = [r.to_line() for r in RECORDS]
    lines[index] = dataclasses.replace(target, ct=bytes(ct)).to_line()

    assert [("altered", target.seq)] == problems_of(lines, head=head_of(RECORDS))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "holds no key", id="empty"),
        pytest.param("k1 abc", "expected 'key_id:base64key'", id="no-colon"),
        pytest.param("k1:not base64!", "not valid base64", id="bad-base64"),
        pytest.param(f"k1:{base64.b64encode(b'short').decode()}", "16, 24 or 32", id="short"),
    ],
)
def test_a_bad_key_file_is_an_error_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KeyRing.parse(text, source="keys")


def test_the_last_key_in_the_file_is_current() -> None:
    assert ("k2", {"k1", "k2"}) == (ROTATED.current, set(ROTATED.keys))
