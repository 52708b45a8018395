"""The hash chain: each account's ledger entries, chained in order under a secret key
(tamper evidence that holds against anyone with database access).

An entry's ``hash`` covers its facts (``HASHED``, then its ``created_at``) and the hash of the
account's previous entry (``GENESIS_HASH`` for the first); the account row keeps the last
one (``accounts.last_hash``), so an entry appended under the account lock chains to it. An
edited, inserted or deleted entry breaks the chain at that entry or the next: verify-ledger
(verification.py) recomputes it. Hashes are stored as 32 bytes.

Keyed: the hash is HMAC-SHA256 of that material under the ledger chain key
(LEDGER_CHAIN_KEYS, config.py), which is never stored in the database. Someone who can
write the database but does not hold the key cannot make a new or rewritten entry verify.
Entries written before the key existed carry plain SHA-256 (``legacy_hash``); they verify
only up to the entry id recorded, and sealed with the key, when keying started
(``ledger_chain_start``, migration 0008): a plain SHA-256 entry after it is refused.

No key id is stored with an entry: verify-ledger tries each configured key (the current
one first, then the verify-only ones kept for rotation). An HMAC matches under one key
only, so trying them is as exact as a stored id, costs one extra HMAC per entry per older
key, and needs no schema change on a ledger of millions of rows; a key id column would
also be writable by the attacker and so prove nothing.

The keys are process-wide (``use_keyring``): every write path (ingest's fast path,
redemptions, reversals, reviews, rewards' refunds, campaigns' 'bonus' entries) goes
through ``entries._entry``, which
takes the next hash from ``next_hash``; ``factory.create_app`` installs the configured
keys at start. verify-ledger takes its keys from the configuration it runs with.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carbon_credits.storage.models import LedgerEntry

GENESIS_HASH = bytes(32)
"""The hash an account's first entry chains to."""


HASHED = ("user_id", "seq", "kind", "points", "ug", "balance_after", "event_pk",
          "redemption_pk", "mode", "factor_version_id")
"""The facts of an entry its hash covers, in order, after its predecessor's hash and
before its ``created_at``."""


@dataclass(frozen=True)
class Keyring:
    """The ledger chain keys by name, the signing (current) key first; the others only
    verify entries written before a rotation."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a keyring needs at least one key")

    @property
    def current(self) -> tuple[str, bytes]:
        return self.keys[0]

    def named(self, name: str) -> bytes | None:
        return next((key for kid, key in self.keys if kid == name), None)


_keyring: Keyring | None = None


def use_keyring(keyring: Keyring | None) -> Keyring | None:
    """Install the process's chain keys (``create_app``); returns the ones it replaces."""
    global _keyring
    previous, _keyring = _keyring, keyring
    return previous


def keyring() -> Keyring:
    """The process's chain keys; writing an entry without them is a configuration error,
    never a silent fall-back to an unkeyed hash."""
    if _keyring is None:
        raise RuntimeError("no ledger chain key installed: create_app installs "
                           "LEDGER_CHAIN_KEYS (ledger.chain.use_keyring)")
    return _keyring


def material(row: Mapping[str, Any], prev: bytes) -> bytes:
    """What an entry's hash covers. The material is the one entries were hashed with when
    hashes were stored as hex (the predecessor's in hex first), so entries hashed then
    still verify."""
    created: datetime = row["created_at"]
    return ("|".join(
        [prev.hex(), *("" if row[name] is None else str(row[name]) for name in HASHED)]
    ) + "|" + created.isoformat(timespec="microseconds")).encode()


def keyed_hash(row: Mapping[str, Any], prev: bytes, key: bytes) -> bytes:
    """HMAC-SHA256 under ``key`` of the entry's material: what its ``hash`` is."""
    return hmac.digest(key, material(row, prev), "sha256")


def next_hash(row: Mapping[str, Any], prev: bytes) -> bytes:
    """The hash of a new entry: keyed under the process's current key."""
    return keyed_hash(row, prev, keyring().current[1])


def legacy_hash(row: Mapping[str, Any], prev: bytes) -> bytes:
    """Plain SHA-256 of the material: entries written before keying (``row_hash``)."""
    return hashlib.sha256(material(row, prev)).digest()


row_hash = legacy_hash
"""The unkeyed hash, as entries were hashed before migration 0008 (migration 0003 and its
tests recompute it)."""


def entry_values(entry: LedgerEntry | Any) -> dict[str, Any]:
    """The facts an entry's hash covers, from an entry or a result row of its columns."""
    return {name: getattr(entry, name) for name in (*HASHED, "created_at")}


def matching_key(row: Mapping[str, Any], prev: bytes, stored: bytes,
                 keys: Sequence[tuple[str, bytes]]) -> str | None:
    """The name of the key under which ``stored`` is the entry's hash, or None."""
    data = material(row, prev)
    for name, key in keys:
        if hmac.compare_digest(hmac.digest(key, data, "sha256"), stored):
            return name
    return None


def start_mac(legacy_last_entry_id: int, key: bytes) -> bytes:
    """The seal of where keyed entries start: moving the boundary needs the key."""
    return hmac.digest(key, f"ledger-chain-start|{legacy_last_entry_id}".encode(), "sha256")
