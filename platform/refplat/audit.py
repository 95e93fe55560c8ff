"""Audit records: canonical events, AES-GCM sealing under a key ring, and the hash chain.

An :class:`AuditEvent` (seq, Redis time, actor, action, object id, details) is serialized as
sorted-key compact JSON and sealed into a :class:`SealedRecord`:

- ``ct`` is ``nonce (12 random bytes) || AES-GCM(key, nonce, plaintext, ad)``;
- ``ad`` (associated data) is ``"refplat-audit/1" || seq || key id || prev``, so a record
  cannot be moved to another seq or chain position, nor relabelled with another key id;
- ``prev`` is the chain hash of the record before it (32 zero bytes before seq 1), and
  ``hash_n = SHA-256(prev || len(ct) || ct || len(kid) || kid || seq)`` (lengths as
  fixed-width big-endian integers, so no two inputs concatenate to the same bytes).

A record is stored as one sorted-key JSON line ``{"ct", "kid", "prev", "seq", "v"}``; the
key id, seq and prev are in the clear, the event is not.

Keys live in a key file of lines ``key_id:base64key`` (``#`` comments and blank lines
ignored); the last line is the current key, earlier lines stay for reading older records.
Rotation is appending a line (``refplat audit keygen --out FILE`` does it). AES-GCM with
random 96-bit nonces is good for about 2**32 records per key: rotate well before that.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

GENESIS = bytes(32)
NONCE_BYTES = 12
RECORD_VERSION = 1
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
AD_PREFIX = b"refplat-audit/1\x00"


class AuditAction(enum.StrEnum):
    """What an audit event records."""

    TENANT_CREATE = "tenant.create"
    SERVER_CREATE = "server.create"
    SERVER_DELETE = "server.delete"
    SERVER_POWER = "server.power"
    SESSION_ALLOCATE = "session.allocate"
    SESSION_END = "session.end"
    BACKUP_CREATE = "backup.create"
    BACKUP_RESTORE = "backup.restore"
    CONTROLLER_SCHEDULE = "controller.schedule"
    CONTROLLER_NODE_LOST = "controller.node_lost"
    CONTROLLER_SERVER_LOST = "controller.server_lost"
    CONTROLLER_SESSION_REPLACED = "controller.session_replaced"
    CONTROLLER_SESSION_EXPIRED = "controller.session_expired"
    CONTROLLER_REMOVE_ORPHAN = "controller.remove_orphan"


class AuditRecordError(ValueError):
    """A stored record that does not parse, names an unknown key or fails authentication."""


@dataclass(frozen=True)
class AuditEvent:
    """One audited mutation or decision, as it is before encryption."""

    seq: int
    time: float
    actor: str
    action: str
    object_id: str
    details: Mapping[str, str]

    def canonical(self) -> bytes:
        """The canonical plaintext: sorted-key compact JSON."""
        body = {
            "action": self.action,
            "actor": self.actor,
            "details": dict(self.details),
            "object": self.object_id,
            "seq": self.seq,
            "time": self.time,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_canonical(cls, raw: bytes) -> AuditEvent:
        """Parse a plaintext produced by :meth:`canonical`."""
        body = json.loads(raw)
        return cls(
            seq=int(body["seq"]),
            time=float(body["time"]),
            actor=str(body["actor"]),
            action=str(body["action"]),
            object_id=str(body["object"]),
            details={str(k): str(v) for k, v in body["details"].items()},
        )


@dataclass(frozen=True)
class KeyRing:
    """Every audit key by id; ``current`` seals new records."""

    keys: Mapping[str, bytes]
    current: str

    @classmethod
    def parse(cls, text: str, *, source: str) -> KeyRing:
        """Parse key-file text; raise ValueError naming ``source`` and the line."""
        keys: dict[str, bytes] = {}
        current = ""
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key_id, key = _key_line(line, where=f"{source}:{number}")
            if key_id in keys:
                raise ValueError(f"{source}:{number}: key id {key_id} appears twice")
            keys[key_id], current = key, key_id
        if not keys:
            raise ValueError(f"audit key file {source} holds no key; run 'refplat audit keygen'")
        return cls(keys=keys, current=current)

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Read a key file."""
        return cls.parse(path.read_text(encoding="utf-8"), source=str(path))


def _key_line(line: str, *, where: str) -> tuple[str, bytes]:
    key_id, sep, encoded = line.partition(":")
    if not sep or not KEY_ID.match(key_id):
        raise ValueError(f"{where}: expected 'key_id:base64key' with a key id of [A-Za-z0-9._-]")
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise ValueError(f"{where}: key {key_id} is not valid base64") from None
    if len(key) not in (16, 24, 32):
        raise ValueError(f"{where}: key {key_id} must be 16, 24 or 32 bytes, not {len(key)}")
    return key_id, key


def new_key_line(*, key_id: str) -> str:
    """A key-file line holding a fresh random 256-bit key."""
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


@dataclass(frozen=True)
class SealedRecord:
    """One stored record: seq, key id and prev hash in the clear, the event encrypted."""

    seq: int
    kid: str
    prev: bytes
    ct: bytes

    def to_line(self) -> str:
        """The stored form: one sorted-key JSON line."""
        body = {
            "ct": base64.b64encode(self.ct).decode(),
            "kid": self.kid,
            "prev": self.prev.hex(),
            "seq": self.seq,
            "v": RECORD_VERSION,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_line(cls, line: str) -> SealedRecord:
        """Parse the stored form; raise AuditRecordError when it is not one."""
        try:
            body: dict[str, Any] = json.loads(line)
            record = cls(
                seq=int(body["seq"]),
                kid=str(body["kid"]),
                prev=bytes.fromhex(body["prev"]),
                ct=base64.b64decode(body["ct"], validate=True),
            )
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise AuditRecordError(f"not an audit record ({exc})") from None
        if body.get("v") != RECORD_VERSION or len(record.prev) != 32:
            raise AuditRecordError("not an audit record (bad version or prev hash)")
        return record

    def chain_hash(self) -> bytes:
        """``SHA-256(prev || len(ct) || ct || len(kid) || kid || seq)``."""
        kid = self.kid.encode()
        digest = hashlib.sha256(self.prev)
        digest.update(struct.pack(">I", len(self.ct)) + self.ct)
        digest.update(struct.pack(">H", len(kid)) + kid)
        digest.update(struct.pack(">Q", self.seq))
        return digest.digest()


def associated_data(*, seq: int, kid: str, prev: bytes) -> bytes:
    """What AES-GCM authenticates beside the ciphertext: seq, key id and prev hash."""
    encoded = kid.encode()
    return AD_PREFIX + struct.pack(">Q", seq) + struct.pack(">H", len(encoded)) + encoded + prev


def seal(event: AuditEvent, *, keys: KeyRing, prev: bytes) -> SealedRecord:
    """Encrypt ``event`` under the current key, chained after ``prev``."""
    nonce = os.urandom(NONCE_BYTES)
    ad = associated_data(seq=event.seq, kid=keys.current, prev=prev)
    ct = AESGCM(keys.keys[keys.current]).encrypt(nonce, event.canonical(), ad)
    return SealedRecord(seq=event.seq, kid=keys.current, prev=prev, ct=nonce + ct)


def unseal(record: SealedRecord, *, keys: KeyRing) -> AuditEvent:
    """Decrypt and authenticate ``record``; raise AuditRecordError when that fails."""
    key = keys.keys.get(record.kid)
    if key is None:
        raise AuditRecordError(f"key id {record.kid!r} is not in the key file")
    ad = associated_data(seq=record.seq, kid=record.kid, prev=record.prev)
    nonce, ct = record.ct[:NONCE_BYTES], record.ct[NONCE_BYTES:]
    try:
        event = AuditEvent.from_canonical(AESGCM(key).decrypt(nonce, ct, ad))
    except (InvalidTag, ValueError):
        raise AuditRecordError("fails authentication (ciphertext, seq, key id or prev)") from None
    if event.seq != record.seq:
        raise AuditRecordError(f"encrypted seq {event.seq} differs from stored seq")
    return event


@dataclass(frozen=True)
class ChainPoint:
    """A position in the chain: a seq and the chain hash of the record at it."""

    seq: int
    hash: bytes

    def text(self) -> str:
        """The stored form ``seq:hexhash`` (used for compare-and-set in Redis)."""
        return f"{self.seq}:{self.hash.hex()}"

    @classmethod
    def parse(cls, text: str | None) -> ChainPoint:
        """Parse :meth:`text`; None (key absent) is the genesis point."""
        if text is None:
            return START
        seq, _, digest = text.partition(":")
        point = cls(seq=int(seq), hash=bytes.fromhex(digest))
        if point.seq < 0 or len(point.hash) != 32:
            raise ValueError(f"{text!r} is not 'seq:sha256-hex'")
        return point


START = ChainPoint(seq=0, hash=GENESIS)
