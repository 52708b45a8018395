"""The consents a user gave and withdrew, and the audit log's reference of the user: their
part of the export and of erasure."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from carbon_credits.privacy import audit_refs, consents
from carbon_credits.privacy.registry import Holder, Subject, register
from carbon_credits.storage.models import Consent


def _export(session: Session, subject: Subject) -> list[dict[str, Any]]:
    return consents.history(session, subject.user_id)


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    """Kept under the pseudonym: the record that processing was authorised while it was."""
    session.execute(update(Consent).where(Consent.user_id == subject.user_id).values(
        user_id=pseudonym))


HOLDER = register(Holder("consents", ("consents",), _export, _erase))
AUDIT = register(audit_refs.HOLDER)
"""The audit log's references of users (the log itself names nobody: ``audit_refs``)."""
