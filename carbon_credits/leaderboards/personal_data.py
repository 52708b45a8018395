"""A user's leaderboard choice (shown or hidden) in the export, and its erasure
(``privacy.registry``). The boards themselves are in Redis: the erasure route takes the
user off them after the commit (``service.remove_user``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.storage.models import LeaderboardPrivacy


def _export(session: Session, subject: Subject) -> dict[str, Any] | None:
    row = session.scalars(select(LeaderboardPrivacy).where(
        LeaderboardPrivacy.user_id == subject.user_id)).one_or_none()
    return None if row is None else columns(row)


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    session.execute(delete(LeaderboardPrivacy).where(
        LeaderboardPrivacy.user_id == subject.user_id))


HOLDER = register(Holder("leaderboard_privacy", ("leaderboard_privacy",), _export, _erase,
                         order=200))
