"""Matching a client's post with a provider's record, and the trust policies' verdicts
(ingest/trust.py): pure, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from carbon_credits.ingest import trust
from carbon_credits.ingest.trust import Report, Trust, judge, same_trip
from carbon_credits.schemas import trust as trust_schemas

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
TEN_MIN = timedelta(minutes=10)


def metro(source: str | None, began: datetime = T0, status: str = "credited",
          reason: str | None = None, origin: str = "luohu", destination: str = "futian",
          event_id: str | None = None) -> Report:
    return Report(event_id or f"{source or 'client'}-{began.isoformat()}", "metro", began,
                  began + timedelta(minutes=25), date(2026, 12, 7), origin, destination,
                  None, source, status, reason)


def bus(source: str | None, line: str = "b1", board: str = "s1", alight: str | None = None,
        began: datetime = T0) -> Report:
    return Report(f"{source}-bus", "bus", began, None, date(2026, 12, 7), board, alight, line,
                  source)


def test_a_metro_trip_matches_on_stations_and_start_within_the_tolerance() -> None:
    client, op = metro(None), metro("mtr", began=T0 + timedelta(minutes=9))
    assert same_trip(client, op, TEN_MIN) and same_trip(op, client, TEN_MIN)
    assert not same_trip(client, replace(op, began=T0 + timedelta(minutes=11)), TEN_MIN)
    assert not same_trip(client, replace(op, destination="other"), TEN_MIN)
    assert not same_trip(client, replace(op, origin="other"), TEN_MIN)
    assert not same_trip(client, replace(op, mode="bus"), TEN_MIN)


def test_two_reports_of_one_source_kind_never_match() -> None:
    """Two client posts of one trip are the overlap rule's business, not trust's."""
    assert not same_trip(metro(None), metro(None), TEN_MIN)
    assert not same_trip(metro("a"), metro("b"), TEN_MIN)


def test_a_bus_trip_matches_on_line_and_boarding_and_alighting_when_both_give_it() -> None:
    assert same_trip(bus(None), bus("bus-co", alight="s9"), TEN_MIN)
    assert same_trip(bus(None, alight="s9"), bus("bus-co", alight="s9"), TEN_MIN)
    assert not same_trip(bus(None, alight="s8"), bus("bus-co", alight="s9"), TEN_MIN)
    assert not same_trip(bus(None, line="b2"), bus("bus-co"), TEN_MIN)
    assert not same_trip(bus(None, board="s2"), bus("bus-co"), TEN_MIN)


def test_a_bike_ride_matches_on_start_and_end() -> None:
    ride = Report("c", "bikeshare", T0, T0 + timedelta(minutes=20), date(2026, 12, 7),
                  None, None, None, None)
    op = replace(ride, event_id="o", source="bikes")
    assert same_trip(ride, op, TEN_MIN)
    assert not same_trip(ride, replace(op, ended=T0 + timedelta(minutes=40)), TEN_MIN)


def test_steps_match_on_the_local_day() -> None:
    day = Report("c", "steps", T0, None, date(2026, 12, 7), None, None, None, None)
    assert same_trip(day, replace(day, source="health", began=T0 + timedelta(hours=9)),
                     TEN_MIN)
    assert not same_trip(day, replace(day, source="health", local_date=date(2026, 12, 6)),
                         TEN_MIN)


def test_under_client_a_second_report_of_a_credited_trip_is_a_duplicate() -> None:
    client = metro(None)
    verdict = judge(trust.CLIENT, metro("mtr"), [client])
    assert verdict.outcome == "duplicate" and verdict.match == client
    assert judge(trust.CLIENT, metro(None), [metro("mtr")]).outcome == "duplicate"
    assert judge(trust.CLIENT, metro(None), []).outcome == "credit"
    assert judge(trust.CLIENT, metro("mtr"), []).outcome == "credit"


def test_under_operator_confirms_a_client_post_waits_and_the_record_closes_it() -> None:
    confirms = Trust("operator_confirms")
    assert judge(confirms, metro(None), []).outcome == "hold"
    waiting = metro(None, status="held", reason=trust.AWAITING)
    verdict = judge(confirms, metro("mtr"), [waiting])
    assert (verdict.outcome, verdict.close) == ("credit", (waiting,))
    # held by a plausibility rule, not for the record: not the record's to close
    other = replace(waiting, reason="overlapping_trip")
    assert judge(confirms, metro("mtr"), [other]) == trust.Verdict("credit")
    # the record came first: the client's post is the duplicate
    assert judge(confirms, metro(None), [metro("mtr")]).outcome == "duplicate"


def test_steps_under_client_are_counted_from_both_sources() -> None:
    day = Report("c", "steps", T0, None, date(2026, 12, 7), None, None, None, None)
    assert judge(trust.CLIENT, replace(day, source="h"), [day]).outcome == "credit"
    assert judge(trust.CLIENT, day, [replace(day, source="h")]).outcome == "credit"


def test_steps_under_operator_confirms_close_every_waiting_count_of_the_day() -> None:
    day = Report("c1", "steps", T0, None, date(2026, 12, 7), None, None, None, None,
                 "held", trust.AWAITING)
    later = replace(day, event_id="c2")
    verdict = judge(Trust("operator_confirms"), replace(day, event_id="h", source="h",
                                                        status="credited", reason=None),
                    [day, later])
    assert verdict.outcome == "credit" and verdict.close == (day, later)


def test_the_schemas_policies_are_trusts() -> None:
    assert trust_schemas.POLICIES == trust.POLICIES


minutes = st.integers(min_value=-30, max_value=30)


@given(a=minutes, b=minutes, tolerance=st.integers(min_value=0, max_value=20),
       same_stations=st.booleans())
def test_matching_is_symmetric_and_bounded_by_the_tolerance(
        a: int, b: int, tolerance: int, same_stations: bool) -> None:
    client = metro(None, began=T0 + timedelta(minutes=a))
    op = metro("mtr", began=T0 + timedelta(minutes=b),
               destination="futian" if same_stations else "elsewhere")
    window = timedelta(minutes=tolerance)
    assert same_trip(client, op, window) == same_trip(op, client, window)
    assert same_trip(client, op, window) == (same_stations and abs(a - b) <= tolerance)
