"""Guarantees of the set-based intake (ingest/intake.py) that the per-event path it
replaced (e25f783: one transaction per event, batch items in a savepoint each) gave.

Found in review: reading for the whole chunk first creates the account and records the
device before any event is decided, and the chunk used to commit whatever the decisions
were, so a refused event (422/409) left rows behind. A chunk that stores no new event now
rolls back, and a new user's city is that of the first event stored. The other tests here
cover the chunk's pricing, chain, concurrency and rollups.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from carbon_credits.ingest import events
from carbon_credits.ledger import verification
from carbon_credits.networks import demo_network
from carbon_credits.networks.catalog import store_network
from carbon_credits.reports.sketch import UserHash
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import load_event
from carbon_credits.storage.models import (
    Account,
    DeviceAccount,
    Event,
    FactorVersion,
    LedgerEntry,
    ReportRollup,
    User,
)
from carbon_credits.tokens import Principal
from methodology.factors import NET_FACTOR, Factor, factor_set
from tests import factories


def _headers(token: Callable[..., str], sub: str, device: str | None = None,
             city: str | None = "shenzhen") -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token(sub, city=city)}"}
    if device is not None:
        headers["X-Device-Id"] = device
    return headers


def _post(client: FlaskClient, how: str, body: dict[str, Any], headers: dict[str, str]
          ) -> tuple[int, dict[str, Any]]:
    """One event, as a single post or as a one-item batch: (status, result or error)."""
    if how == "single":
        r = client.post("/v1/events", json=body, headers=headers)
        return r.status_code, r.json
    r = client.post("/v1/events/batch", json={"events": [body]}, headers=headers)
    assert r.status_code == 200, r.json
    item = r.json["results"][0]
    return item["status"], item["result"] or {"error": item["error"]}


# ---------------------------------------------------------------- refusals change nothing

@pytest.mark.parametrize("how", ["single", "batch"])
def test_refused_events_do_not_put_their_accounts_on_a_device(
        client: FlaskClient, token: Callable[..., str], how: str) -> None:
    """Three accounts whose only posts from a device were refused (422) never used it for
    anything: a fourth account's trip from that device is credited. (``_devices_read``
    records (device, user) before any event is decided; a chunk with nothing stored rolls
    that back. Before the fix the trip was held as ``device_on_many_accounts``.)"""
    device = f"dev-{uuid.uuid4().hex[:12]}"
    for _ in range(3):
        other = f"r-{uuid.uuid4().hex[:12]}"
        bad = factories.metro(exit_station_id="atlantis")  # unquantifiable: 422
        status, answer = _post(client, how, bad, _headers(token, other, device))
        assert status == 422 and answer["error"]["code"] == "unquantifiable", answer
    me = f"r-{uuid.uuid4().hex[:12]}"
    status, answer = _post(client, how, factories.metro(), _headers(token, me, device))
    assert status == 201, answer
    rules = [hit["code"] for hit in answer["explanation"]["plausibility"]]
    assert "device_on_many_accounts" not in rules, rules
    assert answer["status"] == "credited"


def test_a_refused_first_event_creates_no_user_account_or_device_row(
        rt: Runtime, client: FlaskClient, token: Callable[..., str]) -> None:
    """A user's first post refused (no methodology for the city it names): no user,
    account or device row is left, though reading created them before the refusal."""
    uid, device = f"r-{uuid.uuid4().hex[:12]}", f"dev-{uuid.uuid4().hex[:12]}"
    headers = _headers(token, uid, device, city=None)
    r = client.post("/v1/events", json=factories.metro(city="atlantis"), headers=headers)
    assert r.status_code == 422 and r.json["error"]["code"] == "no_methodology", r.json
    with rt.db.transaction() as s:
        left = (s.get(User, uid), s.get(Account, uid),
                s.scalar(select(func.count()).select_from(DeviceAccount)
                         .where(DeviceAccount.device_id == device)))
    assert left == (None, None, 0)


@pytest.mark.parametrize("how", ["single", "batch"])
def test_the_users_city_is_that_of_the_first_event_applied(
        rt: Runtime, client: FlaskClient, token: Callable[..., str], how: str) -> None:
    """A token without a city: the user's city comes from the first event that is applied,
    not from an earlier refused one (single: the refused post's transaction is rolled
    back; batch: the account is created with chunk[0]'s city, then corrected to the first
    stored event's)."""
    uid = f"r-{uuid.uuid4().hex[:12]}"
    headers = _headers(token, uid, city=None)
    refused, good = factories.metro(city="atlantis"), factories.metro()
    if how == "single":
        assert client.post("/v1/events", json=refused, headers=headers).status_code == 422
        assert client.post("/v1/events", json=good, headers=headers).status_code == 201
    else:
        r = client.post("/v1/events/batch", json={"events": [refused, good]}, headers=headers)
        assert [x["status"] for x in r.json["results"]] == [422, 201], r.json
    with rt.db.transaction() as s:
        assert s.get_one(User, uid).city == "shenzhen"


# ---------------------------------------------------------------- a chunk as a whole

def _own_city(rt: Runtime, switches_at: Any, grams_per_pkm: tuple[str, str]) -> str:
    """A city of this test's own: metro v1 from 20 days ago, v2 from ``switches_at``
    (stored directly: the API only takes future versions), the demo network."""
    name = f"ir-{uuid.uuid4().hex[:10]}"
    with rt.db.transaction() as s:
        for version, since, value in (("v1", factories.NOW - timedelta(days=20),
                                       grams_per_pkm[0]),
                                      ("v2", switches_at, grams_per_pkm[1])):
            fs = factor_set("metro", name, version, "net",
                            Factor(NET_FACTOR, Decimal(value), "g CO2/person-km", "test"))
            s.add(FactorVersion(city=name, mode="metro", version=version, kind="net",
                                factors=fs.to_dict(), effective_from=since,
                                created_by="test", reason="seed"))
        store_network(s, name, "demo", "test", demo_network.stations(), demo_network.lines())
    return name


def test_one_batch_prices_each_event_with_its_citys_version_at_its_start(
        rt: Runtime, client: FlaskClient, auth: dict[str, str]) -> None:
    """Several cities and modes in one chunk, versions switching within the batch's span
    at a different instant per city, events posted out of time order: each event gets the
    version in force for its own city and mode at its own start."""
    a = _own_city(rt, factories.today_at(12), ("46.8", "50"))
    b = _own_city(rt, factories.today_at(7), ("46.8", "60"))
    plan = [(a, 13, "v2"), (b, 6, "v1"), (a, 10, "v1"), (b, 8, "v2"), (a, 12, "v2")]
    items: list[dict[str, Any]] = [factories.metro(city=city, start=factories.today_at(hour))
                                   for city, hour, _ in plan]
    items.insert(2, factories.steps(3000))  # another mode, shenzhen's own versions
    r = client.post("/v1/events/batch", json={"events": items}, headers=auth)
    results = r.json["results"]
    assert all(x["status"] == 201 for x in results), results
    metro_results = [x["result"] for x in results if x["result"]["mode"] == "metro"]
    assert [(x["city"], x["methodology"]["version"]) for x in metro_results] == [
        (city, version) for city, _hour, version in plan]
    # The same trip is priced by its version's factor: v2 of b (60) > v2 of a (50) > v1.
    grams = {(x["city"], x["methodology"]["version"]): x["explanation"]["avoided_grams"]
             for x in metro_results}
    assert grams[(a, "v1")] == grams[(b, "v1")] < grams[(a, "v2")] < grams[(b, "v2")]


def test_a_copied_chunk_and_a_single_post_keep_one_verifiable_chain(
        lenient_rt: Runtime, user_id: str) -> None:
    """A batch written with COPY on PostgreSQL (>= 8 earn entries; INSERT on SQLite), then
    a single post, then a replay of the batch: verify-ledger finds the hash chain, the
    sequence, the balances and the carried remainder consistent with the events."""
    user = Principal(user_id, "user", "shenzhen")
    bodies = [factories.metro(start=factories.today_at(5) + timedelta(minutes=30 * n))
              for n in range(12)]
    first = events.ingest_batch(lenient_rt, user, bodies)
    assert [x["status"] for x in first] == [201] * 12
    events.ingest(lenient_rt, user, load_event(factories.bus(start=factories.today_at(20))))
    again = events.ingest_batch(lenient_rt, user, bodies)
    assert [x["result"] for x in again] == [x["result"] for x in first]
    assert list(verification.verify(lenient_rt.db, user_ids=[user_id])) == []
    with lenient_rt.db.transaction() as s:
        account = s.get_one(Account, user_id)
        assert account.lifetime_points == account.lifetime_ug // 10**6
        assert account.carry_ug == account.lifetime_ug % 10**6


def test_concurrent_copies_of_a_new_users_batch_apply_each_event_once(
        rt: Runtime, user_id: str) -> None:
    """The same 10-event batch (COPY on PostgreSQL) posted by four workers at once for a
    user with no account yet: the account is created once, each event applied once (one
    201, the other copies 200 with the same answer), one earn entry each."""
    user = Principal(user_id, "user", "shenzhen")
    bodies = [factories.metro(start=factories.today_at(5) + timedelta(minutes=30 * n))
              for n in range(10)]
    start = threading.Barrier(4)

    def run(_: int) -> list[dict[str, Any]]:
        start.wait()
        return events.ingest_batch(rt, user, bodies)

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(run, range(4)))
    for n in range(10):
        copies = [a[n] for a in answers]
        assert sorted(c["status"] for c in copies) == [200, 200, 200, 201], copies
        assert all(c["result"] == copies[0]["result"] for c in copies)
    with rt.db.transaction() as s:
        rows = s.scalar(select(func.count()).select_from(Event).where(Event.user_id == user_id))
        entries = s.scalar(select(func.count()).select_from(LedgerEntry)
                           .where(LedgerEntry.user_id == user_id))
    assert rows == entries == 10  # 10 trips of 376 g: all credited, under the 5 kg cap
    assert list(verification.verify(rt.db, user_ids=[user_id])) == []


def test_a_chunks_credits_reach_every_cell_it_touches(rt: Runtime, user_id: str) -> None:
    """One chunk crediting several report cells (two days, two modes, repeated cells): the
    merged upserts (one executemany on PostgreSQL) count the user once per event in each
    cell, as separate posts would."""
    user = Principal(user_id, "user", "shenzhen")
    yesterday = factories.NOW - timedelta(days=1)
    bodies = [factories.metro(start=factories.today_at(6)),
              factories.bus(start=factories.today_at(9)),
              factories.metro(start=yesterday.replace(hour=7)),
              factories.metro(start=factories.today_at(11)),
              factories.bus(start=yesterday.replace(hour=12)),
              factories.metro(start=yesterday.replace(hour=15))]
    where = (ReportRollup.city == "shenzhen",
             ReportRollup.shard == UserHash.of(user_id).shard)

    def cells() -> dict[tuple[str, str], tuple[int, int]]:
        """(day, mode) -> (events, the user's register) over the user's shard rows."""
        with rt.db.transaction() as s:
            rows = s.execute(select(ReportRollup.local_date, ReportRollup.mode,
                                    ReportRollup.events, ReportRollup.hll)
                             .where(*where)).all()
        found: dict[tuple[str, str], tuple[int, int]] = {}
        for day, mode, n, hll in rows:
            had = found.get((str(day), mode), (0, 0))
            found[(str(day), mode)] = (had[0] + n,
                                       max(had[1], hll[UserHash.of(user_id).register]))
        return found

    before = cells()
    results = events.ingest_batch(rt, user, bodies)
    assert all(r["status"] == 201 and r["result"]["grams"] > 0 for r in results), results
    expected = Counter((str(r["result"]["local_date"]), r["result"]["mode"]) for r in results)
    after = cells()
    assert {k: after[k][0] - before.get(k, (0, 0))[0] for k in after
            if after[k][0] != before.get(k, (0, 0))[0]} == expected
    assert all(after[k][1] >= UserHash.of(user_id).rho for k in expected)
