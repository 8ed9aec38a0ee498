"""Masking of personal data in live records for callers without the ``pii`` right.

The catalog says which attributes are personal data: a data entity's attribute classified
``PII`` (any case). Masked fields stay in a record with the value null and are named in its
``masked`` list; conflicts over them are dropped (their values would show what was masked);
a record key that is a PII match key (an e-mail address, say) is replaced by a keyed hash,
stable while the process runs, so records can still be told apart and paged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import replace
from typing import TYPE_CHECKING

from metadata.model import NodeRecord

if TYPE_CHECKING:
    from catalog.sources.records import UnifiedRecord

#: Keys of masked record keys; new for every process, so a hash cannot be looked up offline.
_KEY_SECRET = secrets.token_bytes(32)


def pii_attributes(entity: NodeRecord) -> frozenset[str]:
    """The names of the entity's attributes classified PII."""
    return frozenset(
        str(a["name"])
        for a in entity.attributes
        if str(a.get("classification") or "").strip().lower() == "pii"
    )


def masked_key(key: str) -> str:
    """A stand-in for a record key that is personal data."""
    digest = hmac.new(_KEY_SECRET, key.encode(), hashlib.sha256).hexdigest()
    return f"masked:{digest[:24]}"


def mask_record(record: UnifiedRecord, pii: frozenset[str], key_is_pii: bool) -> UnifiedRecord:
    """The record with its PII fields null and named in ``masked``."""
    hidden = sorted(f for f in record.data if f in pii)
    if not hidden and not key_is_pii:
        return record
    data = {f: (None if f in pii else v) for f, v in record.data.items()}
    conflicts = [c for c in record.conflicts if c.field not in pii]
    return replace(
        record,
        key=masked_key(record.key) if key_is_pii else record.key,
        data=data,
        conflicts=conflicts,
        masked=hidden,
    )


__all__ = ["mask_record", "masked_key", "pii_attributes"]
