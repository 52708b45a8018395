"""Consent to the privacy notice: accepted, withdrawn, listed; and the gate events pass.

A user's consent is the latest row of ``consents`` (append-only): an acceptance of a
notice version, or a withdrawal. Events of a city that requires consent
(CONSENT_REQUIRED) are refused, each with its reason code, while the user's latest row is
not an acceptance of the required version (PRIVACY_NOTICE_VERSION): ``refusal`` decides it,
pure; ingest reads the latest rows of a chunk's users with its other reads (``LATEST``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from carbon_credits.errors import Forbidden, InvalidInput
from carbon_credits.privacy.notices import NOTICES
from carbon_credits.storage.db import Database
from carbon_credits.storage.models import AuditRecord, Consent, User, utcnow
from carbon_credits.storage.sql import Prebuilt

CONSENTS: Table = Consent.__table__  # type: ignore[assignment]

CONSENT_REQUIRED = "consent_required"
"""Reason code: the user never accepted the required notice version (or only an older one)."""
CONSENT_WITHDRAWN = "consent_withdrawn"
"""Reason code: the user's latest step was a withdrawal."""


def refusal(latest: tuple[str, str] | None, required_version: str) -> str | None:
    """Why a user's events are refused, from their latest (notice version, action), or
    None when they may be processed."""
    if latest is None:
        return CONSENT_REQUIRED
    version, action = latest
    if action == "withdraw":
        return CONSENT_WITHDRAWN
    return None if version == required_version else CONSENT_REQUIRED


def refused(code: str, required_version: str) -> Forbidden:
    """The 403 of an event refused for want of consent (a batch item's, or a post's)."""
    if code == CONSENT_WITHDRAWN:
        return Forbidden("consent to the privacy notice was withdrawn: no events are "
                         "accepted until it is given again (POST /v1/me/consents)",
                         code=CONSENT_WITHDRAWN, params={"version": required_version})
    return Forbidden(f"consent to privacy notice {required_version} is required before "
                     "events are accepted (POST /v1/me/consents)", code=CONSENT_REQUIRED,
                     params={"version": required_version})


LATEST = Prebuilt(lambda one_of: select(
    CONSENTS.c.user_id, CONSENTS.c.notice_version, CONSENTS.c.action).where(
        CONSENTS.c.id.in_(select(func.max(CONSENTS.c.id)).where(
            one_of(CONSENTS.c.user_id, "users")).group_by(CONSENTS.c.user_id))))
"""The latest consent row of each of ``users`` (the ingest path's read: prebuilt)."""


def latest_by_user(rows: Iterable[tuple[Any, ...]]) -> dict[str, tuple[str, str]]:
    """``LATEST``'s rows as user -> (notice version, action)."""
    return {user_id: (version, action) for user_id, version, action in rows}


def _latest(session: Session, user_id: str) -> Consent | None:
    return session.scalars(select(Consent).where(Consent.user_id == user_id)
                           .order_by(Consent.id.desc()).limit(1)).one_or_none()


def view(consent: Consent) -> dict[str, Any]:
    return {"id": consent.id, "notice_version": consent.notice_version,
            "action": consent.action, "source": consent.source, "note": consent.note,
            "recorded_at": consent.recorded_at}


def accept(db: Database, user_id: str, version: str, required_version: str
           ) -> tuple[dict[str, Any], bool]:
    """Record the user's acceptance of notice ``version`` (the required one); accepting
    it again while it stands records nothing more. Returns the standing row and whether
    it is new."""
    if version not in NOTICES:
        raise InvalidInput("unknown privacy notice version", fields={
            "notice_version": [f"unknown version; the current one is {required_version}"]})
    if version != required_version:
        raise InvalidInput("not the current privacy notice", fields={
            "notice_version": [f"not the current version, {required_version}"]})
    with db.transaction() as session:
        latest = _latest(session, user_id)
        if latest is not None and refusal((latest.notice_version, latest.action),
                                          version) is None:
            return view(latest), False
        consent = Consent(user_id=user_id, notice_version=version, action="accept",
                          source="user", recorded_at=utcnow())
        session.add(consent)
        session.flush()
        return view(consent), True


def withdraw(db: Database, user_id: str) -> tuple[dict[str, Any] | None, bool]:
    """Record the withdrawal of the user's consent; nothing more if there is none standing.
    Returns the latest row (None: never consented) and whether it is new."""
    with db.transaction() as session:
        latest = _latest(session, user_id)
        if latest is None or latest.action == "withdraw":
            return (None if latest is None else view(latest)), False
        consent = Consent(user_id=user_id, notice_version=latest.notice_version,
                          action="withdraw", source="user", recorded_at=utcnow())
        session.add(consent)
        session.flush()
        return view(consent), True


def history(session: Session, user_id: str) -> list[dict[str, Any]]:
    """Every consent step of the user, oldest first."""
    return [view(c) for c in session.scalars(
        select(Consent).where(Consent.user_id == user_id).order_by(Consent.id))]


def status(db: Database, user_id: str, required_version: str, required_here: bool
           ) -> dict[str, Any]:
    """The user's consent: the required version, whether events need it, the user's
    standing state and the history."""
    with db.transaction() as session:
        steps = history(session, user_id)
    latest = steps[-1] if steps else None
    code = refusal(None if latest is None else (latest["notice_version"], latest["action"]),
                   required_version)
    return {"required_version": required_version, "required": required_here,
            "given": code is None, "refusal": code if required_here else None,
            "history": steps}


def deem(db: Database, version: str, note: str, actor: str, city: str | None = None
         ) -> int:
    """Record a deemed acceptance of ``version`` (source 'deemed', with ``note``) for each
    user (of ``city``, if given) with no consent row at all; users who withdrew, or
    accepted anything, are left as they are. Audited with the count, in the same
    transaction. Returns how many were recorded."""
    now = utcnow()
    with db.transaction() as session:
        query = select(User.id).where(~select(Consent.id).where(
            Consent.user_id == User.id).exists())
        if city is not None:
            query = query.where(User.city == city)
        users = list(session.scalars(query.order_by(User.id)))
        session.add_all(Consent(user_id=u, notice_version=version, action="accept",
                                source="deemed", note=note, recorded_at=now) for u in users)
        session.add(AuditRecord(actor=actor, action="consent.deem",
                                target=f"city:{city}" if city else "all users", reason=note,
                                before=None, after={"notice_version": version,
                                                    "users": len(users)}))
    return len(users)
