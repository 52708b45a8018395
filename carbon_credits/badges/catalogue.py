"""Badges as data: an admin creates, edits and retires them (audited); a user lists theirs.
The demo's ten ready-made badges are seeded by ``init-db`` (``DEMO_BADGES``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carbon_credits import audit
from carbon_credits.badges import rules
from carbon_credits.errors import Conflict, InvalidInput, NotFound
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Badge, BadgeAward, utcnow
from carbon_credits.tokens import Principal


def _checked(rule: Any) -> dict[str, Any]:
    try:
        return rules.validate(rule)
    except rules.RuleError as exc:
        raise InvalidInput(f"invalid badge rule at {exc.path}: {exc.message}",
                           fields={exc.path: [exc.message]}) from None


def view(badge: Badge) -> dict[str, Any]:
    return {"code": badge.code, "status": badge.status, "version": badge.version,
            "name": {"zh": badge.name_zh, "en": badge.name_en},
            "description": {"zh": badge.description_zh, "en": badge.description_en},
            "rule": badge.rule, "created_at": badge.created_at,
            "updated_at": badge.updated_at}


def _get(session: Session, code: str) -> Badge:
    badge = session.scalars(select(Badge).where(Badge.code == code)).one_or_none()
    if badge is None:
        raise NotFound(f"no badge {code!r}")
    return badge


def create(rt: Runtime, admin: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """A new active badge; 409 if the code exists."""
    rule = _checked(data["rule"])
    with rt.db.transaction() as session:
        if session.scalars(select(Badge.id).where(Badge.code == data["code"])).first():
            raise Conflict(f"badge {data['code']!r} exists")
        badge = _new(data, rule)
        session.add(badge)
        session.flush()
        audit.record(session, actor=admin.sub, action="badge.create",
                     target=f"badge:{badge.code}", reason=data.get("reason", ""),
                     before=None, after=_audited(badge))
        return view(badge)


def _new(data: dict[str, Any], rule: dict[str, Any]) -> Badge:
    now = utcnow()
    return Badge(code=data["code"], status="active", name_zh=data["name"]["zh"],
                 name_en=data["name"]["en"],
                 description_zh=data.get("description", {}).get("zh", ""),
                 description_en=data.get("description", {}).get("en", ""),
                 rule=rule, version=1, created_at=now, updated_at=now)


def _audited(badge: Badge) -> dict[str, Any]:
    return {"status": badge.status, "version": badge.version, "name_zh": badge.name_zh,
            "name_en": badge.name_en, "rule": badge.rule}


def edit(rt: Runtime, admin: Principal, code: str, data: dict[str, Any]) -> dict[str, Any]:
    """Change a badge's names, descriptions or rule (a new version; awards stand)."""
    rule = _checked(data["rule"]) if "rule" in data else None
    with rt.db.transaction() as session:
        badge = _get(session, code)
        before = _audited(badge)
        if "name" in data:
            badge.name_zh, badge.name_en = data["name"]["zh"], data["name"]["en"]
        if "description" in data:
            badge.description_zh = data["description"]["zh"]
            badge.description_en = data["description"]["en"]
        if rule is not None:
            badge.rule = rule
        badge.version += 1
        badge.updated_at = utcnow()
        audit.record(session, actor=admin.sub, action="badge.edit", target=f"badge:{code}",
                     reason=data.get("reason", ""), before=before, after=_audited(badge))
        return view(badge)


def retire(rt: Runtime, admin: Principal, code: str, reason: str) -> dict[str, Any]:
    """No longer awarded; awards already made stand. 409 if already retired."""
    with rt.db.transaction() as session:
        badge = _get(session, code)
        if badge.status == "retired":
            raise Conflict(f"badge {code!r} is retired already")
        before = _audited(badge)
        badge.status = "retired"
        badge.updated_at = utcnow()
        audit.record(session, actor=admin.sub, action="badge.retire", target=f"badge:{code}",
                     reason=reason, before=before, after=_audited(badge))
        return view(badge)


def listing(rt: Runtime) -> list[dict[str, Any]]:
    with rt.db.transaction() as session:
        return [view(b) for b in session.scalars(select(Badge).order_by(Badge.id))]


def mine(rt: Runtime, principal: Principal) -> dict[str, Any]:
    """The user's badges (earned, with the event that earned them) and the active ones
    not earned yet."""
    with rt.db.transaction() as session:
        held = {a.badge_id: a for a in session.scalars(
            select(BadgeAward).where(BadgeAward.user_id == principal.sub))}
        badges = session.scalars(select(Badge).order_by(Badge.id)).all()
    earned, open_ = [], []
    for badge in badges:
        shown = {"code": badge.code, "name": {"zh": badge.name_zh, "en": badge.name_en},
                 "description": {"zh": badge.description_zh, "en": badge.description_en},
                 "rule": badge.rule}
        award = held.get(badge.id)
        if award is not None:
            earned.append({**shown, "awarded_at": award.awarded_at,
                           "event_id": award.event_id, "badge_version": award.badge_version})
        elif badge.status == "active":
            open_.append(shown)
    return {"earned": earned, "not_earned": open_}


DEMO_BADGES: tuple[dict[str, Any], ...] = (
    {"code": "first-metro", "name": {"zh": "首次地铁出行", "en": "First metro trip"},
     "rule": {"kind": "first_trip", "mode": "metro"}},
    {"code": "first-bus", "name": {"zh": "首次公交出行", "en": "First bus ride"},
     "rule": {"kind": "first_trip", "mode": "bus"}},
    {"code": "first-steps", "name": {"zh": "迈出第一步", "en": "First steps counted"},
     "rule": {"kind": "first_trip", "mode": "steps"}},
    {"code": "green-100km", "name": {"zh": "绿色出行100公里", "en": "100 km of green travel"},
     "rule": {"kind": "distance", "km": 100}},
    {"code": "green-1000km", "name": {"zh": "绿色出行1000公里",
                                      "en": "1,000 km of green travel"},
     "rule": {"kind": "distance", "km": 1000}},
    {"code": "streak-7", "name": {"zh": "连续绿色出行7天", "en": "7-day streak"},
     "rule": {"kind": "streak", "days": 7}},
    {"code": "streak-30", "name": {"zh": "连续绿色出行30天", "en": "30-day streak"},
     "rule": {"kind": "streak", "days": 30}},
    {"code": "three-modes-week",
     "name": {"zh": "一周三种方式", "en": "All three modes in one week"},
     "rule": {"kind": "modes_in_week", "count": 3, "modes": ["bus", "metro", "steps"]}},
    {"code": "metro-20-month",
     "name": {"zh": "一个月地铁20次", "en": "20 metro trips in a month"},
     "rule": {"kind": "trips", "mode": "metro", "count": 20, "period": "month"}},
    {"code": "bus-5-week", "name": {"zh": "一周公交5次", "en": "5 bus rides in a week"},
     "rule": {"kind": "trips", "mode": "bus", "count": 5, "period": "week"}},
)


def seed_demo(session: Session) -> int:
    """The demo badges not there yet (idempotent: by code); how many were added."""
    known = set(session.scalars(select(Badge.code)))
    added = 0
    for data in DEMO_BADGES:
        if data["code"] not in known:
            session.add(_new(data, rules.validate(data["rule"])))
            added += 1
    return added
