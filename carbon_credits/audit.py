"""The audit log of admin actions: who, what, when, before/after and why."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import AuditRecord


def record(session: Session, *, actor: str, action: str, target: str, reason: str,
           before: dict[str, Any] | None, after: dict[str, Any] | None) -> AuditRecord:
    """Add an audit record inside the caller's transaction: it commits with the change."""
    entry = AuditRecord(actor=actor, action=action, target=target, reason=reason,
                        before=before, after=after)
    session.add(entry)
    return entry


def page(rt: Runtime, limit: int, before_id: int | None) -> list[dict[str, Any]]:
    with rt.db.transaction() as session:
        query = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(AuditRecord.id < before_id)
        return [
            {"id": a.id, "actor": a.actor, "action": a.action, "target": a.target,
             "before": a.before, "after": a.after, "reason": a.reason,
             "created_at": a.created_at}
            for a in session.scalars(query)
        ]
