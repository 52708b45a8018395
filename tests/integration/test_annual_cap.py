"""The annual cap (ANNUAL_CAP_G) on the write path: a user's credits of a local year
stop at it, on ingest and on an approval, and the explanation built on read says so."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from flask import Flask
from sqlalchemy import select

from carbon_credits.ledger import verification
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import AnnualUsage
from tests import factories


def test_credits_of_a_year_stop_at_the_annual_cap(make_app: Callable[..., Flask],
                                                  user_id: str) -> None:
    app = make_app(annual_cap_g=Decimal(500))
    client, rt = app.test_client(), app.extensions["carbon_credits"]
    auth = {"Authorization": f"Bearer {rt.codec.encode(user_id, 'user', 'shenzhen', 600)}"}
    answers = [client.post("/v1/events", json=factories.metro(start=factories.today_at(h)),
                           headers=auth).json for h in (6, 9, 12, 15)]
    grams = [a["grams"] for a in answers]
    assert 499 <= sum(grams) <= 500 and grams[0] > 0, grams  # whole grams, floored
    capped = [a for a in answers if a["status"] == "capped"]
    assert capped and capped[0]["reason"] == "annual_cap"
    assert capped[0]["explanation"]["cap_applied"]["cap"] == "annual"
    for answer in answers:  # the explanation built on read is the one answered
        seen = client.get(f"/v1/events/{answer['event_id']}", headers=auth).json
        assert seen["explanation"] == answer["explanation"]
    runtime: Runtime = rt
    with runtime.db.transaction() as session:
        year = session.scalars(select(AnnualUsage).where(AnnualUsage.user_id == user_id)).one()
        assert (year.year, year.credited_ug) == (factories.NOW.year, 500 * 10**6)
    assert list(verification.verify(runtime.db, user_ids=[user_id])) == []
