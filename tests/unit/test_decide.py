"""Deciding posts in memory (carbon_credits/ingest/decide.py), Cosmic Python style: the
chunk's state is built by hand, the catalog is a fake, and no database is involved."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from carbon_credits.config import Config
from carbon_credits.errors import Conflict, InvalidInput
from carbon_credits.ingest import idempotency
from carbon_credits.ingest.decide import Book, Member, NewEvent, Posted, decide
from carbon_credits.ledger.entries import LockedAccount
from carbon_credits.networks import demo_network
from carbon_credits.networks.catalog import Timeline, VersionedFactors
from carbon_credits.schemas import load_event
from carbon_credits.tokens import Principal
from methodology import METHODOLOGIES, TransitNetwork, get_methodology

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=TZ)
TODAY = NOW.date()
NETWORK = TransitNetwork("shenzhen", "demo", demo_network.stations(), demo_network.lines())
CONFIG = Config(instance_path=None, database_url="sqlite://", jwt_secret="x" * 32)  # type: ignore[arg-type]


class FakeLookups:
    """The catalog as deciding sees it: one city's versions exist, one network."""

    def __init__(self, factored: set[tuple[str, str]] | None = None) -> None:
        self.factored = factored if factored is not None else {("shenzhen", m)
                                                               for m in METHODOLOGIES}
        self.explained: list[NewEvent] = []

    def explain(self, event: NewEvent) -> dict[str, Any]:
        self.explained.append(event)
        return {"built": "on read"}

    def has_factors(self, city: str, mode: str) -> bool:
        return (city, mode) in self.factored

    def network(self, network_id: int) -> TransitNetwork:
        assert network_id == 7
        return NETWORK


def timeline(*cities: str) -> Timeline:
    start = datetime(2021, 12, 1, tzinfo=UTC)
    return Timeline({(city, mode): [VersionedFactors(n, start, method.default_factors("shenzhen"))]
                     for city in cities for n, (mode, method) in enumerate(METHODOLOGIES.items())},
                    {city: 7 for city in cities})


def account(user: str, frozen: bool = False) -> LockedAccount:
    return LockedAccount(user_id=user, balance_points=0, lifetime_points=0, lifetime_ug=0,
                         carry_ug=0, entry_count=0, last_hash=bytes(32), updated_at=NOW,
                         frozen=frozen, city="shenzhen")


def book(*users: str, frozen: bool = False, cities: tuple[str, ...] = ("shenzhen",)) -> Book:
    members = {u: Member(account(u, frozen)) for u in users}
    for member in members.values():
        member.usage[TODAY] = {}
        member.usage[TODAY - timedelta(days=1)] = {}
    return Book(members, {}, timeline(*cities), {})


def posted(user: str, body: dict[str, Any], now: datetime = NOW) -> Posted:
    data = load_event(body)
    method = get_methodology(data["mode"])
    occurred_at = method.occurred_at(data, TZ)
    payload = idempotency.canonical_payload(data)
    return Posted(Principal(user, "user", "shenzhen"), method, data, payload,
                  idempotency.payload_hash(payload), occurred_at,
                  occurred_at.astimezone(TZ).date(), None, now, TZ)


def steps(count: int, event_id: str = "s-1", day: date = TODAY) -> dict[str, Any]:
    return {"event_id": event_id, "mode": "steps", "city": "shenzhen",
            "date": day.isoformat(), "steps": count}


def metro(event_id: str = "m-1", city: str = "shenzhen") -> dict[str, Any]:
    return {"event_id": event_id, "mode": "metro", "city": city,
            "entry_station_id": "luohu", "exit_station_id": "shaoniangong",
            "started_at": "2026-12-06T08:00:00+08:00", "ended_at": "2026-12-06T08:25:00+08:00"}


def test_a_metro_trip_is_priced_on_the_network_and_the_state_moves_on() -> None:
    state = book("u")
    applied = decide(CONFIG, FakeLookups(), state, posted("u", metro()))
    event = applied.event
    assert applied.created and event.status == "credited"
    # 46.8 g/pkm x 8,038 m on the demo network (README's first event)
    assert (event.credited_ug, event.points) == (376_178_400, 376)
    assert state.fresh[("u", "m-1")] is event and state.earned == [event]
    assert state.members["u"].usage[TODAY]["metro"].credited_ug == 376_178_400


def test_steps_credit_only_the_increase_over_the_day_s_highest_count() -> None:
    state = book("u")
    hour = timedelta(hours=1)  # posts an hour apart: no faster than a walk
    first = decide(CONFIG, FakeLookups(), state,
                   posted("u", steps(5_000, "s-1"), now=NOW - 2 * hour)).event
    second = decide(CONFIG, FakeLookups(), state,
                    posted("u", steps(8_000, "s-2"), now=NOW - hour)).event
    lower = decide(CONFIG, FakeLookups(), state, posted("u", steps(7_000, "s-3"))).event
    assert [e.credited_ug for e in (first, second, lower)] == [100_000_000, 60_000_000, 0]


def test_the_same_post_twice_is_a_replay_of_the_first() -> None:
    state = book("u")
    first = decide(CONFIG, FakeLookups(), state, posted("u", metro()))
    again = decide(CONFIG, FakeLookups(), state, posted("u", metro()))
    assert (again.created, again.event) == (False, first.event)
    assert state.earned == [first.event]  # credited once


def test_a_replay_of_an_event_stored_earlier_is_explained_on_read() -> None:
    state = book("u")
    stored = decide(CONFIG, FakeLookups(), book("u"), posted("u", metro())).event
    stored.explanation = None  # as read back from the database
    state.stored[("u", "m-1")] = stored
    lookups = FakeLookups()
    again = decide(CONFIG, lookups, state, posted("u", metro()))
    assert not again.created and again.event.explanation == {"built": "on read"}
    assert lookups.explained == [stored] and state.fresh == {}


def test_the_same_event_id_with_another_payload_is_a_conflict() -> None:
    state = book("u")
    decide(CONFIG, FakeLookups(), state, posted("u", steps(5_000)))
    with pytest.raises(Conflict):
        decide(CONFIG, FakeLookups(), state, posted("u", steps(6_000)))


@pytest.mark.parametrize(("factored", "field"), [(False, "city"), (True, "started_at")])
def test_no_version_in_force_names_the_city_or_the_time(factored: bool, field: str) -> None:
    lookups = FakeLookups({("wuhan", "metro")} if factored else set())
    with pytest.raises(InvalidInput) as caught:
        decide(CONFIG, lookups, book("u"), posted("u", metro(city="wuhan")))
    assert caught.value.code == "no_methodology" and field in caught.value.fields


def test_a_step_count_over_the_daily_cap_is_capped() -> None:
    state = book("u")
    event = decide(CONFIG, FakeLookups(), state, posted("u", steps(20_000))).event
    assert event.status == "capped" and event.credited_ug == 296_000_000  # 296 g a day


def test_a_frozen_user_s_event_is_held_and_counts_toward_nothing() -> None:
    state = book("u", frozen=True)
    event = decide(CONFIG, FakeLookups(), state, posted("u", metro())).event
    assert (event.status, event.reason, event.credited_ug) == ("held", "user_frozen", 0)
    assert state.earned == [] and "metro" not in state.members["u"].usage[TODAY]


def test_a_closed_day_s_later_count_is_not_judged_by_speed() -> None:
    """Yesterday's 8,000 after 5,000, synced a minute later: no steps_too_fast."""
    yesterday = TODAY - timedelta(days=1)
    state = book("u")
    decide(CONFIG, FakeLookups(), state, posted("u", steps(5_000, "y-1", yesterday)))
    later = posted("u", steps(8_000, "y-2", yesterday), now=NOW + timedelta(minutes=1))
    event = decide(CONFIG, FakeLookups(), state, later).event
    assert event.status == "credited" and event.credited_ug == 60_000_000


def test_users_of_one_chunk_do_not_see_each_other() -> None:
    state = book("a", "b")
    for user in ("a", "b"):
        event = decide(CONFIG, FakeLookups(), state, posted(user, steps(20_000))).event
        assert event.status == "capped"  # each user's own cap, untouched by the other's
    assert [e.user_id for e in state.earned] == ["a", "b"]


def test_deciding_changes_nothing_of_a_refused_event() -> None:
    state = book("u")
    before = replace(state.members["u"].account)
    with pytest.raises(InvalidInput):
        decide(CONFIG, FakeLookups(set()), state, posted("u", metro(city="wuhan")))
    assert state.fresh == {} and state.members["u"].account == before
