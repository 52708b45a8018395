"""The ledger's hash chain material is fixed (carbon_credits/ledger/chain.py ``row_hash``):
every stored chain was hashed with it, and verify-ledger recomputes it, so a change to the
separator, to how an empty fact is written or to the order of the facts would make every
stored ledger fail verification (or, changed consistently, go unnoticed by the tests that
write and verify with the same code: the survivors of mutation testing, docs/MUTATION.md).
Changing it on purpose needs a migration that re-hashes the chains, and this test.

Hashes are stored as 32 bytes; the material still begins with the predecessor's hash in hex,
as when hashes were stored as hex, so entries hashed then verify unchanged."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from carbon_credits.ledger.chain import GENESIS_HASH, HASHED, row_hash

ROW = {"user_id": "u-1", "seq": 1, "kind": "earn", "points": 3,
       "ug": 3_500_000, "balance_after": 3, "event_pk": 42, "redemption_pk": None,
       "mode": "metro", "factor_version_id": 7,
       "created_at": datetime(2026, 12, 6, 1, 2, 3, 4000, tzinfo=UTC)}


def test_the_hash_is_sha256_of_the_facts_joined_by_bars_an_empty_fact_as_nothing() -> None:
    material = "|".join(["0" * 64, "u-1", "1", "earn", "3", "3500000", "3", "42", "",
                         "metro", "7", "2026-12-06T01:02:03.004000+00:00"])
    assert row_hash(ROW, GENESIS_HASH) == hashlib.sha256(material.encode()).digest()
    assert row_hash(ROW, GENESIS_HASH).hex() == (
        "259e25c89a8b4a22046182d23ef732fc69a0a72156c83190b582f9d58f90d3ae")


def test_every_fact_is_covered() -> None:
    for name in HASHED:
        assert row_hash({**ROW, name: "changed"}, GENESIS_HASH) != row_hash(ROW, GENESIS_HASH), name
    later = ROW["created_at"].replace(microsecond=5000)  # type: ignore[attr-defined]
    assert row_hash({**ROW, "created_at": later}, GENESIS_HASH) != row_hash(ROW, GENESIS_HASH)


def test_the_predecessor_is_covered() -> None:
    assert row_hash(ROW, bytes.fromhex("01" * 32)) != row_hash(ROW, GENESIS_HASH)
