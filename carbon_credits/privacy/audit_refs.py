"""The references audit records name users by, and their part of the export and erasure.

The audit log is append-only: what it holds can never be erased. So it holds no user id:
a record about a user carries ``subject_ref``, a random reference kept with the user's id
in ``audit_subjects`` (one row per user, made at the first record about them). That row
is the only link from the log to the person; erasure moves it to the user's pseudonym, as
it moves their ledger, so an auditor still reads "subject X was frozen, then erased" (and
finds X's pseudonymous ledger), and a search of the log for the subject finds nothing.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject
from carbon_credits.storage.models import AuditRecord, AuditSubject
from carbon_credits.storage.sql import insert_missing

REF_PREFIX = "subj-"


def subject_ref(session: Session, user_id: str) -> str:
    """The user's audit reference, made at the first record about them. Random, not
    derived from the id: nothing but ``audit_subjects`` leads from it to the user."""
    found = session.scalar(select(AuditSubject.ref).where(AuditSubject.user_id == user_id))
    if found is not None:
        return found
    # ON CONFLICT DO NOTHING: two admins acting on one user at once share one reference.
    insert_missing(session, AuditSubject, [{"user_id": user_id,
                                            "ref": REF_PREFIX + secrets.token_hex(12)}])
    made = session.scalar(select(AuditSubject.ref).where(AuditSubject.user_id == user_id))
    assert made is not None
    return made


def _export(session: Session, subject: Subject) -> dict[str, Any] | None:
    """The user's reference and the admin actions recorded about them (not who acted)."""
    ref = session.scalar(select(AuditSubject.ref).where(
        AuditSubject.user_id == subject.user_id))
    if ref is None:
        return None
    return {"ref": ref, "records": [
        {"id": a.id, "action": a.action, "target": a.target, "reason": a.reason,
         "created_at": a.created_at}
        for a in session.scalars(select(AuditRecord).where(AuditRecord.subject_ref == ref)
                                 .order_by(AuditRecord.id))]}


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    """The reference now leads to the pseudonym; the records, untouched, name nobody."""
    session.execute(update(AuditSubject).where(AuditSubject.user_id == subject.user_id)
                    .values(user_id=pseudonym))


HOLDER = Holder("audit", ("audit_subjects",), _export, _erase)
"""Registered by ``privacy.personal_data``."""
