"""The trips-per-day rule counts the city's local day whatever offset the client posts.

Found in review: the day's bounds were built from the posted offset, so an offset east of
the city's cut the day short and its late trips went uncounted (the rule was bypassed)."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from flask.testing import FlaskClient

from tests import factories


@pytest.mark.parametrize("offset_h", [8, 12])
def test_seventeenth_trip_is_held_whatever_the_posted_offset(
        client: FlaskClient, token, user_id: str, offset_h: int) -> None:
    auth = {"Authorization": f"Bearer {token(user_id)}"}
    for i in range(16):  # 16 trips between 16:00 and 22:30 local (Asia/Shanghai)
        body = factories.metro(start=factories.today_at(16) + timedelta(minutes=26 * i))
        r = client.post("/v1/events", json=body, headers=auth)
        assert r.status_code == 201 and r.json["status"] in ("credited", "capped"), r.json
    # Trip 17 at 05:00 local, posted with offset +offset_h (the same instant either way).
    start = factories.today_at(5).astimezone(timezone(timedelta(hours=offset_h)))
    body = factories.metro(start=start)
    r = client.post("/v1/events", json=body, headers=auth)
    assert r.status_code == 201, r.json
    assert r.json["local_date"] == factories.NOW.date().isoformat()
    rules = [h["code"] for h in r.json["explanation"]["plausibility"]]
    assert "too_many_trips" in rules, (offset_h, r.json["status"], rules)
    assert r.json["status"] == "held"
