"""A user's badges in the export, and their erasure (``privacy.registry``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.storage.models import Badge, BadgeAward


def _export(session: Session, subject: Subject) -> list[dict[str, Any]]:
    return [{**columns(award), "code": code} for award, code in session.execute(
        select(BadgeAward, Badge.code).join(Badge, Badge.id == BadgeAward.badge_id)
        .where(BadgeAward.user_id == subject.user_id).order_by(BadgeAward.badge_id))]


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    """Deleted: a badge is the person's own; nothing else stands on it."""
    session.execute(delete(BadgeAward).where(BadgeAward.user_id == subject.user_id))


HOLDER = register(Holder("badges", ("badge_awards",), _export, _erase, order=200))
