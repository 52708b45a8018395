"""The audit of reads: every admin or partner read of users' personal data is an audit
record (``personal_data.read``), written in the read's own transaction, so a read that
answered is a read that was logged.

Whose data is named by the rows' surrogate ids (events' ``id``), not by user ids: the audit
log is append-only, and an erasure must leave no user id behind; while the user exists the
ids lead to them (and after an erasure, to their pseudonym).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from carbon_credits.storage.models import AuditRecord


def record(session: Session, *, reader: str, what: str, event_pks: Sequence[int],
           users: int, reason: str) -> None:
    """Log that ``reader`` read ``what``: the events (by id) of ``users`` users."""
    session.add(AuditRecord(actor=reader, action="personal_data.read", target=what,
                            reason=reason, before=None,
                            after={"events": list(event_pks), "users": users}))
