"""A provider's records credited through the ingest flow, matched with the client's posts
of the same trips under each trust policy (ingest/operator.py, ingest/trust.py), on the
configured database (PostgreSQL by default)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from carbon_credits.antifraud import reviews
from carbon_credits.errors import ServiceError
from carbon_credits.ingest import events, idempotency, operator, trust
from carbon_credits.ledger import verification
from carbon_credits.reports import rollups
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import EventResultSchema, load_event
from carbon_credits.storage import sql
from carbon_credits.storage.models import (
    Account,
    Event,
    LedgerEntry,
    ReportRollup,
    TrustPolicy,
    utcnow,
)
from carbon_credits.tokens import Principal
from tests import factories


@dataclass(frozen=True)
class Provider:
    id: str = "metro-co"
    city: str = "shenzhen"
    modes: frozenset[str] = frozenset({"metro", "bus", "bikeshare", "steps"})


@dataclass(frozen=True)
class Record:
    record_id: str
    user_ref: str
    mode: str
    city: str
    event_data: dict[str, Any]
    payload_hash: bytes = field(default=b"")


def record(user_ref: str, body: dict[str, Any], record_id: str | None = None) -> Record:
    data = load_event(body)
    del data["event_id"]
    digest = idempotency.payload_hash(idempotency.canonical_payload(
        {**data, "user_ref": user_ref}))
    return Record(record_id or factories.new_id(), user_ref, data["mode"], data["city"],
                  data, digest)


@dataclass
class Bindings:
    bound: dict[str, str] = field(default_factory=dict)

    def resolve(self, session: Session, provider_id: str, refs: Collection[str]
                ) -> dict[str, str]:
        return {ref: self.bound[ref] for ref in refs if ref in self.bound}


PROVIDER = Provider()


def send(rt: Runtime, bindings: Bindings, *records: Record, provider: Provider = PROVIDER
         ) -> list[ServiceError | events.Ingested]:
    return operator.apply_records(rt, provider, list(records), bindings.resolve)


def set_policy(rt: Runtime, mode: str, policy: str, confirm_days: int = 2) -> None:
    with rt.db.transaction() as session:
        session.merge(TrustPolicy(city="shenzhen", mode=mode, policy=policy,
                                  confirm_days=confirm_days, tolerance_s=600,
                                  updated_by="test", updated_at=utcnow()))


def balance(rt: Runtime, user_id: str) -> int:
    with rt.db.transaction() as session:
        account = session.get(Account, user_id)
        return 0 if account is None else account.balance_points


def earn_entries(rt: Runtime, user_id: str) -> int:
    with rt.db.transaction() as session:
        return session.scalar(select(func.count()).select_from(LedgerEntry).where(
            LedgerEntry.user_id == user_id, LedgerEntry.kind == "earn")) or 0


def ingested(outcome: ServiceError | events.Ingested) -> dict[str, Any]:
    assert isinstance(outcome, events.Ingested), outcome
    return outcome.event


@pytest.fixture(autouse=True)
def client_policies_after(rt: Runtime) -> Iterator[None]:
    """The run's database is shared: a policy a test sets must not outlive it."""
    yield
    with rt.db.transaction() as session:
        session.execute(delete(TrustPolicy))


@pytest.fixture
def bindings(user_id: str) -> Bindings:
    return Bindings({"card-1": user_id})


def test_a_record_is_credited_as_the_users_event_and_replayed_as_events_are(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], user_id: str,
        bindings: Bindings) -> None:
    trip = record("card-1", factories.metro())
    first = ingested(send(rt, bindings, trip)[0])
    assert (first["status"], first["source"], first["confirmed_by"]) == (
        "credited", "metro-co", "metro-co")
    assert first["event_id"] == f"metro-co~{trip.record_id}" and first["points"] > 0
    again = send(rt, bindings, trip)[0]
    assert isinstance(again, events.Ingested) and not again.created
    assert again.event == first
    changed = Record(trip.record_id, "card-1", "metro", "shenzhen",
                     {**trip.event_data, "exit_station_id": "laojie"}, b"\x01" * 32)
    conflict = send(rt, bindings, changed)[0]
    assert isinstance(conflict, ServiceError) and conflict.status == 409
    # the user sees it as their own event
    r = client.get(f"/v1/events/{first['event_id']}", headers=auth)
    assert r.status_code == 200
    assert r.json == EventResultSchema().dump(first)
    assert balance(rt, user_id) == first["points"]


def test_records_of_users_not_bound_or_of_modes_not_allowed_are_refused_alone(
        rt: Runtime, user_id: str, bindings: Bindings) -> None:
    stranger = record("card-unknown", factories.bus())
    bus_only = Provider(id="bus-co", modes=frozenset({"bus"}))
    fine = record("card-1", factories.bus())
    results = send(rt, bindings, stranger, record("card-1", factories.metro()), fine,
                   provider=bus_only)
    assert isinstance(results[0], ServiceError) and results[0].code == "not_bound"
    assert isinstance(results[1], ServiceError) and results[1].code == "mode_not_allowed"
    assert ingested(results[2])["status"] == "credited"
    with rt.db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Event).where(
            Event.event_id.like("bus-co~%"))) == 1


def test_under_client_a_post_then_its_record_are_credited_once(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], user_id: str,
        bindings: Bindings) -> None:
    body = factories.metro()
    posted = client.post("/v1/events", json=body, headers=auth).json
    assert posted["status"] == "credited"
    reported = ingested(send(rt, bindings, record("card-1", body))[0])
    assert (reported["status"], reported["reason"], reported["points"]) == (
        "rejected", trust.SAME_TRIP, 0)
    assert reported["same_trip"] == body["event_id"]
    seen = client.get(f"/v1/events/{body['event_id']}", headers=auth).json
    assert (seen["status"], seen["confirmed_by"], seen["source"]) == (
        "credited", "metro-co", "client")
    assert balance(rt, user_id) == posted["points"] and earn_entries(rt, user_id) == 1


def test_under_client_a_record_then_the_post_are_credited_once(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], user_id: str,
        bindings: Bindings) -> None:
    body = factories.metro()
    reported = ingested(send(rt, bindings, record("card-1", body))[0])
    # the client's clock and the gate's differ by minutes
    late = {**body, "started_at": factories.today_at(8, 4).isoformat()}
    posted = client.post("/v1/events", json=late, headers=auth).json
    assert (posted["status"], posted["reason"], posted["same_trip"]) == (
        "rejected", trust.SAME_TRIP, reported["event_id"])
    assert balance(rt, user_id) == reported["points"] and earn_entries(rt, user_id) == 1


def test_under_operator_confirms_a_post_waits_for_its_record(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], user_id: str,
        bindings: Bindings) -> None:
    set_policy(rt, "metro", "operator_confirms")
    body = factories.metro()
    posted = client.post("/v1/events", json=body, headers=auth).json
    assert (posted["status"], posted["reason"], posted["points"]) == (
        "held", trust.AWAITING, 0)
    assert balance(rt, user_id) == 0
    # the review queue is for what a person must look at, not for posts awaiting records
    assert reviews.AWAITING_OPERATOR == trust.AWAITING
    assert body["event_id"] not in {e["event_id"] for e in reviews.queue(rt, 500, None)}
    reported = ingested(send(rt, bindings, record("card-1", body))[0])
    assert reported["status"] == "credited" and reported["points"] > 0
    closed = client.get(f"/v1/events/{body['event_id']}", headers=auth).json
    assert (closed["status"], closed["reason"], closed["same_trip"]) == (
        "rejected", trust.SAME_TRIP, reported["event_id"])
    assert balance(rt, user_id) == reported["points"] and earn_entries(rt, user_id) == 1
    assert list(verification.verify(rt.db)) == []


def test_under_operator_confirms_the_providers_distance_is_credited(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], user_id: str,
        bindings: Bindings) -> None:
    set_policy(rt, "bikeshare", "operator_confirms")
    start = factories.today_at(10)
    ride = {"event_id": factories.new_id(), "mode": "bikeshare", "city": "shenzhen",
            "started_at": start.isoformat(),
            "ended_at": (start + timedelta(minutes=15)).isoformat()}
    claimed = client.post("/v1/events", json={**ride, "distance_m": 4000}, headers=auth).json
    assert claimed["status"] == "held"
    measured = ingested(send(rt, bindings, record("card-1", {**ride, "distance_m": 3000}))[0])
    assert measured["explanation"]["distance_m"] == 3000 and measured["grams"] == 279
    assert balance(rt, user_id) == measured["points"]


def test_unconfirmed_posts_are_rejected_after_the_policys_days(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], user_id: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    set_policy(rt, "metro", "operator_confirms", confirm_days=1)
    body = factories.metro()
    assert client.post("/v1/events", json=body, headers=auth).json["status"] == "held"
    assert operator.expire_unconfirmed(rt) == 0  # not a day old yet
    monkeypatch.setattr(rt, "clock", lambda: factories.NOW + timedelta(days=1))
    assert operator.expire_unconfirmed(rt) == 1
    assert operator.expire_unconfirmed(rt) == 0
    seen = client.get(f"/v1/events/{body['event_id']}", headers=auth).json
    assert (seen["status"], seen["reason"]) == ("rejected", trust.NOT_CONFIRMED)


def test_under_operator_only_client_posts_are_refused(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], user_id: str,
        bindings: Bindings) -> None:
    set_policy(rt, "metro", "operator_only")
    r = client.post("/v1/events", json=factories.metro(), headers=auth)
    assert r.status_code == 422 and r.json["error"]["code"] == "operator_only"
    assert "mode" in r.json["error"]["fields"]
    assert client.post("/v1/events", json=factories.bus(), headers=auth).status_code == 201
    assert ingested(send(rt, bindings, record("card-1", factories.metro()))[0])[
        "status"] == "credited"


def test_steps_from_both_sources_credit_the_days_highest_count_once(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], user_id: str,
        bindings: Bindings) -> None:
    """Under ``client`` a day's count from the health platform and the app's own feed the
    day's highest count: only an increase is credited, whoever reports it."""
    day = ingested(send(rt, bindings, record("card-1", factories.steps(9000)))[0])
    assert day["status"] == "credited" and day["points"] > 0
    lower = client.post("/v1/events", json=factories.steps(8000), headers=auth).json
    assert (lower["status"], lower["points"], lower["grams"]) == ("credited", 0, 0)
    again = ingested(send(rt, bindings, record("card-1", factories.steps(9000)))[0])
    assert again["grams"] == 0
    assert balance(rt, user_id) == day["points"] and earn_entries(rt, user_id) == 1


def race(rt: Runtime, client: FlaskClient, headers: dict[str, str], bindings: Bindings,
         body: dict[str, Any]) -> None:
    """The client's post and the provider's record of one trip, sent at once."""
    gate = threading.Barrier(2)

    def post_client() -> None:
        gate.wait(60)
        r = client.post("/v1/events", json=body, headers=headers)
        assert r.status_code == 201, r.json

    def post_record() -> None:
        gate.wait(60)
        assert isinstance(send(rt, bindings, record("card", body))[0], events.Ingested)

    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(post_client), pool.submit(post_record)]:
            f.result(timeout=120)


@pytest.mark.parametrize("policy", ["client", "operator_confirms"])
def test_a_post_and_its_record_arriving_together_are_credited_once(
        rt: Runtime, client: FlaskClient, token: Any, policy: str) -> None:
    set_policy(rt, "metro", policy)
    for n in range(6):
        user = f"u-race-{n}-{factories.new_id()}"
        race(rt, client.application.test_client(),
             {"Authorization": f"Bearer {token(user)}"}, Bindings({"card": user}),
             factories.metro(start=factories.today_at(7 + n)))
        assert earn_entries(rt, user) == 1, (policy, n)
        with rt.db.transaction() as session:
            statuses = sorted(session.scalars(select(Event.status).where(
                Event.user_id == user)))
        assert statuses == ["credited", "rejected"], (policy, n, statuses)
    assert list(verification.verify(rt.db)) == []


def test_reports_group_the_reductions_by_source(
        rt: Runtime, client: FlaskClient, auth: dict[str, str], user_id: str,
        bindings: Bindings, token: Any) -> None:
    """An admin's report (not suppressed) tells the reductions the users' apps reported
    from those a provider did; the rollups rebuilt from the ledger say the same."""
    day = factories.NOW.date().isoformat()
    admin = {"Authorization": f"Bearer {token('ops', 'admin', None)}"}

    def by_source() -> Counter[tuple[str, str]]:
        r = client.get("/v1/reports/reduction", headers=admin, query_string={
            "city": "shenzhen", "from": day, "to": day, "group_by": "source,mode"})
        assert r.status_code == 200, r.json
        return Counter({(row["source"], row["mode"]): row["events"]
                        for row in r.json["rows"]})

    def rollup_sums() -> Counter[tuple[str, str]]:
        with rt.db.transaction() as session:
            sums: Counter[tuple[str, str]] = Counter()
            for r in session.scalars(select(ReportRollup).where(
                    ReportRollup.local_date == factories.NOW.date())):
                sums[(r.source, r.mode)] += r.events
            return sums

    before = by_source()
    assert client.post("/v1/events", json=factories.bus(), headers=auth).status_code == 201
    ingested(send(rt, bindings, record("card-1", factories.metro(
        start=factories.today_at(6))))[0])
    after = by_source()
    after.subtract(before)
    assert +after == Counter({("metro-co", "metro"): 1, ("client", "bus"): 1})
    # Rebuilt from the ledger, this provider's cells are the same (other tests' cells of
    # the shared database are theirs to check).
    live = {k: v for k, v in rollup_sums().items() if k[0] == "metro-co"}
    with rt.db.transaction() as session:
        rollups.rebuild(session, "shenzhen")
    assert {k: v for k, v in rollup_sums().items() if k[0] == "metro-co"} == live


def test_a_chunk_of_many_users_is_read_and_decided_as_its_records_one_by_one(
        rt: Runtime) -> None:
    """A record file's chunk, in one transaction, of more users than a list binds value by
    value (sql.ARRAY_FROM: the keys and trip windows go as arrays, joined): the client
    posts of some users' trips are found (one trip, one credit), an earlier trip of
    another overlaps its record (refused as a rule says), the chunk again is a replay, a
    changed record a conflict; verify-ledger passes."""
    n = sql.ARRAY_FROM + 7
    users = [f"u-many-{i}-{factories.new_id()}" for i in range(n)]
    bindings = Bindings({f"card-{i}": user for i, user in enumerate(users)})
    trips = [("luohu", "dajuyuan"), ("guomao", "huaqianglu"), ("laojie", "gangxia"),
             ("laojie", "huaxin"), ("futiankouan", "shiminzhongxin"), ("luohu", "shaoniangong")]
    # trips of different lengths: each user's balance its own (a write's rows kept apart)
    bodies = [factories.metro(start=factories.today_at(8 + i % 10, i % 7),
                              entry_station_id=trips[i % 6][0], exit_station_id=trips[i % 6][1])
              for i in range(n)]
    for i in range(5):  # the users' own posts of the same trips, stored first
        posted = events.ingest(rt, Principal(users[i], "user", None), load_event(bodies[i]))
        assert posted.event["status"] == "credited"
    # another trip of user 5, overlapping its record's
    overlapping = factories.metro(start=factories.today_at(8 + 5 % 10, 5 % 7 + 5))
    assert events.ingest(rt, Principal(users[5], "user", None),
                         load_event(overlapping)).event["status"] == "credited"
    records = [record(f"card-{i}", bodies[i]) for i in range(n)]
    first = operator.apply_records(rt, PROVIDER, records, bindings.resolve,
                                   per_transaction=n)
    views = [ingested(o) for o in first]
    assert [(v["status"], v["reason"]) for v in views[:5]] == [
        ("rejected", trust.SAME_TRIP)] * 5
    assert views[5]["status"] != "credited"
    assert {v["status"] for v in views[6:]} == {"credited"}
    again = operator.apply_records(rt, PROVIDER, records, bindings.resolve,
                                   per_transaction=n)
    assert all(isinstance(o, events.Ingested) and not o.created for o in again)
    assert [o.event for o in again if isinstance(o, events.Ingested)] == views
    changed = Record(records[9].record_id, "card-9", "metro", "shenzhen",
                     {**records[9].event_data, "exit_station_id": "laojie"}, b"\x01" * 32)
    [conflict] = operator.apply_records(rt, PROVIDER, [changed, *records[10:]],
                                        bindings.resolve, per_transaction=n)[:1]
    assert isinstance(conflict, ServiceError) and conflict.status == 409
    assert [earn_entries(rt, u) for u in users] == [1] * 5 + [1] + [1] * (n - 6)
    assert [balance(rt, u) for u in users[6:]] == [v["points"] for v in views[6:]]
    assert len({v["points"] for v in views[6:]}) > 1
    assert list(verification.verify(rt.db, user_ids=users)) == []
