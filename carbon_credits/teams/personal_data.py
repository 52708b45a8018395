"""A user's teams and friend links in the export, and their erasure
(``privacy.registry``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.storage.models import Friendship, TeamMember


def _export(session: Session, subject: Subject) -> dict[str, Any]:
    return {
        "teams": [columns(row) for row in session.scalars(
            select(TeamMember).where(TeamMember.user_id == subject.user_id)
            .order_by(TeamMember.city))],
        "friends": [columns(row) for row in session.scalars(
            select(Friendship).where(or_(Friendship.user_id == subject.user_id,
                                         Friendship.friend_id == subject.user_id))
            .order_by(Friendship.user_id, Friendship.friend_id))],
    }


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    """Deleted, both sides of each friend link: a link names the person to the friend."""
    session.execute(delete(TeamMember).where(TeamMember.user_id == subject.user_id))
    session.execute(delete(Friendship).where(or_(Friendship.user_id == subject.user_id,
                                                 Friendship.friend_id == subject.user_id)))


HOLDER = register(Holder("teams_and_friends", ("team_members", "friendships"), _export,
                         _erase, order=200))
