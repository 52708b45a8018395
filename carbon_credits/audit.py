"""The audit log of admin actions: who, what, when, before/after and why.

The log is append-only (the owner's triggers refuse UPDATE and DELETE, the service's role
holds neither), so it never holds a user's id: a record about a user names them by an
opaque reference (``subject_ref``), one random value per user kept in ``audit_subjects``,
the one mutable link (``privacy/audit_refs.py``). Erasure moves that link to the user's
pseudonym, and the log then shows what was done to "subject X" (frozen, reversed,
erased) without naming the subject.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carbon_credits.privacy.audit_refs import subject_ref
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import AuditRecord, AuditSubject

__all__ = ["page", "record", "subject_ref"]


def record(session: Session, *, actor: str, action: str, target: str, reason: str,
           before: dict[str, Any] | None, after: dict[str, Any] | None,
           subject_ref: str | None = None) -> AuditRecord:
    """Add an audit record inside the caller's transaction: it commits with the change.
    A record about a user names them by ``subject_ref`` (``subject_ref()``), never by id,
    in the target or anywhere else."""
    entry = AuditRecord(actor=actor, action=action, target=target, reason=reason,
                        before=before, after=after, subject_ref=subject_ref)
    session.add(entry)
    return entry


def page(rt: Runtime, limit: int, before_id: int | None) -> list[dict[str, Any]]:
    """Records, newest first; a record about a user shows, beside its reference, whom the
    reference leads to now: the user, or after an erasure their pseudonym."""
    with rt.db.transaction() as session:
        query = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(AuditRecord.id < before_id)
        rows = list(session.scalars(query))
        refs = {a.subject_ref for a in rows if a.subject_ref is not None}
        users = {ref: user for ref, user in session.execute(
            select(AuditSubject.ref, AuditSubject.user_id).where(
                AuditSubject.ref.in_(refs)))} if refs else {}
        return [
            {"id": a.id, "actor": a.actor, "action": a.action, "target": a.target,
             "before": a.before, "after": a.after, "reason": a.reason,
             "subject_ref": a.subject_ref, "user_id": users.get(a.subject_ref or ""),
             "created_at": a.created_at}
            for a in rows
        ]
