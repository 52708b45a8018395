"""The audit of reads (issue 23, PIPL): an admin's read of users' trips (the review queue of
held events) is in the audit log, naming the reader and the events read, not the users'
ids (the log is append-only: an erasure must leave no user id in it)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import AuditRecord
from tests import factories


def test_an_admins_read_of_held_trips_is_audited(client: FlaskClient, rt: Runtime,
                                                  token: Callable[..., str],
                                                  user_id: str) -> None:
    reader = f"ops-{uuid.uuid4().hex[:8]}"
    admin = {"Authorization": f"Bearer {token(reader, 'admin')}"}
    auth = {"Authorization": f"Bearer {token(user_id)}"}
    assert client.post("/v1/events", json=factories.steps(1000), headers=auth
                       ).status_code == 201  # the user exists
    assert client.post(f"/v1/admin/users/{user_id}/freeze", json={"reason": "farm?"},
                       headers=admin).status_code == 200
    held = client.post("/v1/events", json=factories.metro(), headers=auth)
    assert held.status_code == 201 and held.json["status"] == "held", held.json

    mine: list[dict[str, Any]] = []
    after = ""
    while not mine:  # oldest first: other tests' held events may come before
        page = client.get(f"/v1/admin/reviews?limit=200{after}", headers=admin)
        assert page.status_code == 200 and page.json["items"], page.json
        mine = [item for item in page.json["items"] if item["user_id"] == user_id]
        after = f"&after_id={page.json['items'][-1]['id']}"

    with rt.db.transaction() as session:
        reads = session.scalars(select(AuditRecord).where(
            AuditRecord.actor == reader, AuditRecord.action == "personal_data.read")).all()
    record = reads[-1]  # the page that held the user's event
    assert mine[0]["id"] in record.after["events"]
    assert record.after["users"] >= 1
    assert user_id not in str(record.target) + str(record.after) + record.reason
    # The audit log itself shows the read to admins.
    log = client.get("/v1/admin/audit?limit=50", headers=admin).json["items"]
    assert any(a["action"] == "personal_data.read" and a["actor"] == reader for a in log)
