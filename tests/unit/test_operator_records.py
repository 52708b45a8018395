"""Operator records (carbon_credits/providers/records.py): each kind validates as the
equivalent client event does and yields exactly that event's data; errors name the
record's own fields; the payload hash tells a replay from a conflict."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from carbon_credits.providers.records import KINDS, RECORD_FIELDS, load_record
from carbon_credits.schemas import load_event

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,20}", fullmatch=True)
refs = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "Zs")),
               min_size=1, max_size=40).filter(str.isprintable)
offsets = st.integers(min_value=-12 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1),
                        timezones=offsets)
durations = st.integers(min_value=0, max_value=4 * 3600).map(lambda s: timedelta(seconds=s))


def iso(value: datetime) -> str:
    return value.isoformat()


@st.composite
def records(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """(an operator record, the client event it stands for)."""
    kind = draw(st.sampled_from(sorted(KINDS)))
    start = draw(instants)
    end = start + draw(durations)
    common = {"record_id": draw(ids), "user_ref": draw(refs), "kind": kind}
    city = draw(st.one_of(st.none(), ids))
    if city is not None:
        common["city"] = city
    event: dict[str, Any] = {"event_id": "e-1", "city": city or "shenzhen"}
    if kind == "metro_trip":
        a, b = draw(ids), draw(ids)
        record = {"entry_station_id": a, "exit_station_id": b, "tapped_in_at": iso(start),
                  "tapped_out_at": iso(end)}
        event |= {"mode": "metro", "entry_station_id": a, "exit_station_id": b,
                  "started_at": iso(start), "ended_at": iso(end)}
    elif kind == "bus_trip":
        line, board = draw(ids), draw(ids)
        record = {"line_id": line, "board_stop_id": board, "boarded_at": iso(start)}
        event |= {"mode": "bus", "line_id": line, "board_stop_id": board,
                  "started_at": iso(start)}
        if draw(st.booleans()):
            alight = draw(ids)
            record |= {"alight_stop_id": alight, "alighted_at": iso(end)}
            event |= {"alight_stop_id": alight, "ended_at": iso(end)}
    elif kind == "bike_ride":
        metres = draw(st.integers(min_value=0, max_value=200_000))
        record = {"started_at": iso(start), "ended_at": iso(end), "distance_m": metres}
        if draw(st.booleans()):
            record["bike_id"] = draw(ids)
        event |= {"mode": "bikeshare", "started_at": iso(start), "ended_at": iso(end),
                  "distance_m": metres}
    else:
        day = draw(st.dates(min_value=date(2001, 1, 1), max_value=date(2099, 1, 1)))
        steps = draw(st.integers(min_value=0, max_value=1_000_000))
        record = {"date": day.isoformat(), "steps": steps}
        event |= {"mode": "steps", "date": day.isoformat(), "steps": steps}
    return common | record, event


@given(records())
def test_a_record_yields_exactly_the_equivalent_client_events_data(
        pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    body, event = pair
    record = load_record(body, "shenzhen")
    expected = load_event(event)
    del expected["event_id"]
    assert record.event_data == expected
    assert record.mode == expected["mode"] == KINDS[body["kind"]].mode
    assert record.city == expected["city"]
    assert (record.record_id, record.user_ref, record.kind) == (
        body["record_id"], body["user_ref"], body["kind"])


@given(records(), offsets)
def test_the_same_instants_in_another_offset_are_the_same_record(
        pair: tuple[dict[str, Any], dict[str, Any]], offset: timezone) -> None:
    body, _ = pair
    moved = {k: (datetime.fromisoformat(v).astimezone(offset).isoformat()
                 if k.endswith("_at") else v) for k, v in body.items()}
    assert load_record(moved, "shenzhen").payload_hash == load_record(
        body, "shenzhen").payload_hash


@given(records())
def test_any_changed_value_changes_the_payload_hash(
        pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    body, _ = pair
    digest = load_record(body, "shenzhen").payload_hash
    changed = dict(body, user_ref=body["user_ref"] + "x")
    assert load_record(changed, "shenzhen").payload_hash != digest
    changed = dict(body, record_id=body["record_id"] + "x")
    assert load_record(changed, "shenzhen").payload_hash != digest


def metro(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "record_id": "r-1", "user_ref": "card 8860 1234", "kind": "metro_trip",
        "entry_station_id": "luohu", "exit_station_id": "futian",
        "tapped_in_at": "2026-12-01T08:00:00+08:00", "tapped_out_at": "2026-12-01T08:25:00+08:00"}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def messages(body: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        load_record(body, "shenzhen")
    assert isinstance(caught.value.messages, dict)
    return caught.value.messages


def test_the_city_defaults_to_the_providers() -> None:
    assert load_record(metro(), "guangzhou").city == "guangzhou"
    assert load_record(metro(), "guangzhou").event_data["city"] == "guangzhou"
    assert load_record(metro(city="shenzhen"), "guangzhou").city == "shenzhen"


def test_errors_name_the_records_own_fields() -> None:
    assert "tapped_out_at" in messages(metro(tapped_out_at="2026-12-01T07:00:00+08:00"))
    assert "tapped_in_at" in messages(metro(tapped_in_at="2026-12-01T08:00:00"))  # no offset
    assert "tapped_in_at" in messages(metro(tapped_in_at=None))
    assert "exit_station_id" in messages(metro(exit_station_id="a/b"))


def test_unknown_fields_and_kinds_are_refused() -> None:
    assert messages(metro(started_at="2026-12-01T08:00:00+08:00")) == {
        "started_at": ["Unknown field."]}
    assert "kind" in messages(metro(kind="tram_trip"))
    assert "kind" in messages({k: v for k, v in metro().items() if k != "kind"})
    assert messages(["not", "an", "object"]) == {"_schema": ["expected an object"]}


@pytest.mark.parametrize("ref, ok", [("x" * 128, True), ("x" * 129, False), ("", False),
                                     ("line\nbreak", False), ("卡 8860", True)])
def test_user_ref_is_printable_and_at_most_128(ref: str, ok: bool) -> None:
    if ok:
        assert load_record(metro(user_ref=ref), "shenzhen").user_ref == ref
    else:
        assert "user_ref" in messages(metro(user_ref=ref))


def test_record_ids_follow_the_client_id_rules() -> None:
    assert "record_id" in messages(metro(record_id="x" * 65))
    assert "record_id" in messages(metro(record_id="r-1\n"))
    assert load_record(metro(record_id="x" * 64), "shenzhen").record_id == "x" * 64


def test_a_bike_ride_keeps_its_bike_id_outside_the_event_and_in_the_hash() -> None:
    ride = {"record_id": "b-1", "user_ref": "u", "kind": "bike_ride", "distance_m": 2300,
            "started_at": "2026-12-01T08:00:00+08:00", "ended_at": "2026-12-01T08:12:00+08:00"}
    plain = load_record(ride, "shenzhen")
    tagged = load_record(ride | {"bike_id": "SZ-0042"}, "shenzhen")
    assert tagged.extras == {"bike_id": "SZ-0042"} and plain.extras == {}
    assert tagged.event_data == plain.event_data
    assert tagged.payload_hash != plain.payload_hash
    assert "distance_m" in messages(ride | {"distance_m": "2300"})  # strict integers
    assert "distance_m" in messages(ride | {"distance_m": 200_001})


def test_every_record_field_is_a_known_column() -> None:
    assert {"record_id", "user_ref", "kind", "city", "tapped_in_at", "boarded_at",
            "bike_id", "date", "steps"} <= RECORD_FIELDS


def test_payload_hash_is_in_utc() -> None:
    a = load_record(metro(), "shenzhen")
    assert a.event_data["started_at"].astimezone(UTC) == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
