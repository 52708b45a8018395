"""Replay or conflict, decided from the canonical payload's hash (ingest/idempotency.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from carbon_credits.errors import Conflict
from carbon_credits.ingest.idempotency import canonical_payload, is_replay, payload_hash

CST = timezone(timedelta(hours=8))


def metro(started: datetime) -> dict[str, object]:
    return {"event_id": "t-1", "mode": "metro", "city": "shenzhen", "started_at": started,
            "entry_station_id": "luohu", "exit_station_id": "laojie"}


def test_the_same_instant_in_another_offset_is_the_same_payload() -> None:
    local = datetime(2026, 12, 6, 8, 0, tzinfo=CST)
    assert (payload_hash(canonical_payload(metro(local)))
            == payload_hash(canonical_payload(metro(local.astimezone(UTC)))))


def test_another_instant_is_another_payload() -> None:
    local = datetime(2026, 12, 6, 8, 0, tzinfo=CST)
    assert (payload_hash(canonical_payload(metro(local)))
            != payload_hash(canonical_payload(metro(local + timedelta(minutes=1)))))


def test_dates_are_iso_and_key_order_does_not_matter() -> None:
    a = canonical_payload({"steps": 10, "date": date(2026, 12, 6)})
    b = canonical_payload({"date": date(2026, 12, 6), "steps": 10})
    assert a == b == {"date": "2026-12-06", "steps": 10}
    assert payload_hash(a) == payload_hash(b)


def test_a_stored_event_with_the_same_payload_is_a_replay() -> None:
    digest = payload_hash(canonical_payload({"steps": 10}))
    assert is_replay(digest, digest)


def test_a_stored_event_with_another_payload_is_a_409_naming_event_id() -> None:
    with pytest.raises(Conflict) as caught:
        is_replay(payload_hash({"steps": 10}), payload_hash({"steps": 11}))
    assert caught.value.status == 409
    assert caught.value.code == "event_id_conflict"
    assert caught.value.fields == {"event_id": ["already used"]}
