"""The idempotency hash is stored with every event (carbon_credits/ingest/idempotency.py):
a client's retry of an event stored before a deploy is a replay only if the hash of the
same payload comes out byte for byte the same, on any server. So its text is fixed here:
compact JSON, keys sorted, text as UTF-8 (not \\u escapes), instants in UTC whatever the
server's time zone. Written for survivors of mutation testing (docs/MUTATION.md): the
tests compared two hashes made by the same code, so any consistent change passed."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone

import pytest

from carbon_credits.ingest.idempotency import canonical_payload, payload_hash

CST = timezone(timedelta(hours=8))
PAYLOAD = {"started_at": datetime(2026, 12, 6, 8, 0, tzinfo=CST), "mode": "metro",
           "event_id": "e-1", "note": "深圳北", "city": "shenzhen"}
TEXT = ('{"city":"shenzhen","event_id":"e-1","mode":"metro","note":"深圳北",'
        '"started_at":"2026-12-06T00:00:00+00:00"}')


def test_the_hash_is_sha256_of_compact_sorted_utf8_json() -> None:
    assert payload_hash(canonical_payload(PAYLOAD)) == hashlib.sha256(TEXT.encode()).digest()
    assert payload_hash(canonical_payload(PAYLOAD)).hex() == (
        "2af1a9f1177391216821576356b34f00d1d52da698311b2d051eebfae747bae4")


def test_keys_are_sorted_at_every_level() -> None:
    assert payload_hash({"b": {"y": 1, "x": 2}, "a": 1}) == hashlib.sha256(
        b'{"a":1,"b":{"x":2,"y":1}}').digest()


def test_instants_are_written_in_utc_whatever_the_servers_time_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert canonical_payload(PAYLOAD)["started_at"] == "2026-12-06T00:00:00+00:00"
    finally:
        monkeypatch.undo()
        time.tzset()
