"""GET /v1/me/export: everything held about a user, as JSON, from every registered holder
(``registry``), read in one transaction (one consistent snapshot on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carbon_credits.privacy import registry
from carbon_credits.privacy.registry import Subject
from carbon_credits.storage.db import Database
from carbon_credits.storage.models import utcnow

FORMAT = "carbon-credits personal data export 1"


def export(db: Database, user_id: str, services: Mapping[str, Any]) -> dict[str, Any]:
    """The user's data by holder, with what the export is and when it was made."""
    with db.transaction() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        data = registry.export_all(session, Subject(user_id, services))
    return {"format": FORMAT, "subject": user_id, "exported_at": utcnow().isoformat(),
            "holders": sorted(data), "data": data}
