"""Badge awards: which badges a credit earns (evaluated in the crediting transaction, from
the account aggregates: ``account.hooks``), a user's badges, and revocation on reversal.

Awarded once: ``badge_awards``' primary key is (user, badge), and the insert skips a row
that exists (``ON CONFLICT DO NOTHING``), so a badge is earned once even if two
transactions decided it (they cannot for one user: the account lock serialises them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from carbon_credits.badges import rules
from carbon_credits.storage.cached import Cached
from carbon_credits.storage.models import Badge, BadgeAward, Event
from carbon_credits.storage.sql import Prebuilt, Read

BADGES = cast(Table, Badge.__table__)
AWARDS = cast(Table, BadgeAward.__table__)


@dataclass(frozen=True)
class ActiveBadge:
    id: int
    version: int
    rule: dict[str, Any]
    code: str = ""
    """Its code (the ``badge.earned`` notification names it)."""


_HELD = Prebuilt(lambda one_of: select(AWARDS.c.user_id, AWARDS.c.badge_id)
                 .where(one_of(AWARDS.c.user_id, "users")))


def _active(session: Session) -> list[ActiveBadge]:
    """The active badges, their rules validated (once per change of the table)."""
    return [ActiveBadge(badge_id, version, rules.validate(rule if isinstance(rule, dict)
                                                          else {}), code)
            for badge_id, version, rule, code in session.execute(
                select(Badge.id, Badge.version, Badge.rule, Badge.code)
                .where(Badge.status == "active").order_by(Badge.id))]


ACTIVE = Cached("badges", _active)
"""The active badges, kept in the process (``storage.cached``): read on every credit."""


def held_read(users: list[str]) -> Read:
    return _HELD, {"users": users}


def _insert(dialect: str) -> Prebuilt:
    ins = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = ins(AWARDS).values({c.name: bindparam(c.name) for c in AWARDS.columns}
                                   ).on_conflict_do_nothing()
    return Prebuilt(lambda _: statement)


_INSERTS = {dialect: _insert(dialect) for dialect in ("postgresql", "sqlite")}


def award(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert awards (driver statements only: may be sent with the COMMIT)."""
    _INSERTS[session.get_bind().dialect.name].run(session, rows)


def award_row(user_id: str, badge: ActiveBadge, event_pk: int, event_id: str,
              now: datetime) -> dict[str, Any]:
    return {"user_id": user_id, "badge_id": badge.id, "event_pk": event_pk,
            "event_id": event_id, "badge_version": badge.version, "awarded_at": now}


def revoke(session: Session, event: Event) -> None:
    """The awards earned by a reversed event are taken back (the user may earn them again
    with a later credited event, if the rule then holds)."""
    session.execute(delete(BadgeAward).where(BadgeAward.user_id == event.user_id,
                                             BadgeAward.event_pk == event.id))
