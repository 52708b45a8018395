"""The hash chain: each account's ledger entries, SHA-256-chained in order (tamper evidence).

An entry's ``hash`` covers its facts (``HASHED``, then its ``created_at``) and the hash of the
account's previous entry (``GENESIS_HASH`` for the first); the account row keeps the last
one (``accounts.last_hash``), so an entry appended under the account lock chains to it. An
edited, inserted or deleted entry breaks the chain at that entry or the next: verify-ledger
(verification.py) recomputes it. Hashes are stored as 32 bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from carbon_credits.storage.models import LedgerEntry

GENESIS_HASH = bytes(32)
"""The hash an account's first entry chains to."""


HASHED = ("user_id", "seq", "kind", "points", "ug", "balance_after", "event_pk",
          "redemption_pk", "mode", "factor_version_id")
"""The facts of an entry its hash covers, in order, after its predecessor's hash and
before its ``created_at``."""


def entry_hash(entry: LedgerEntry, prev: bytes) -> bytes:
    """SHA-256 over the entry's facts and its predecessor's hash ``prev`` (tamper
    evidence): what its ``hash`` must be."""
    return row_hash({name: getattr(entry, name) for name in (*HASHED, "created_at")}, prev)


def row_hash(row: Mapping[str, Any], prev: bytes) -> bytes:
    """``entry_hash`` of an entry given as its column values. The material is the one
    entries were hashed with when hashes were stored as hex (the predecessor's in hex
    first), so entries hashed then still verify."""
    material = "|".join(
        [prev.hex(), *("" if row[name] is None else str(row[name]) for name in HASHED)]
    ) + "|" + row["created_at"].isoformat(timespec="microseconds")
    return hashlib.sha256(material.encode()).digest()
