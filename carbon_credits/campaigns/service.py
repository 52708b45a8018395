"""Campaign use cases: an admin creates, lists and ends campaigns (each change audited);
a user sees the campaigns of their city with their progress. One unit of work each."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from carbon_credits import audit
from carbon_credits.errors import Conflict, InvalidInput, NotFound
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import Campaign, CampaignProgress, User, utcnow
from carbon_credits.tokens import Principal

SHOWN_AFTER_END_DAYS = 31
"""A user still sees a campaign this long after its last day (its outcome)."""


def view(c: Campaign) -> dict[str, Any]:
    return {"id": c.id, "city": c.city, "mode": c.mode, "starts_on": c.starts_on,
            "ends_on": c.ends_on, "goal_events": c.goal_events,
            "bonus_points": c.bonus_points, "budget_points": c.budget_points,
            "spent_points": c.spent_points, "title_zh": c.title_zh, "title_en": c.title_en,
            "created_by": c.created_by, "created_at": c.created_at, "ended_at": c.ended_at}


def create(rt: Runtime, admin: Principal, data: dict[str, Any]) -> dict[str, Any]:
    """A new campaign; 409 if the id is taken. The budget must pay at least one bonus."""
    if data["budget_points"] < data["bonus_points"]:
        raise InvalidInput("the budget cannot pay one bonus", code="invalid_input",
                           fields={"budget_points": ["less than bonus_points"]})
    if data["ends_on"] < data["starts_on"]:
        raise InvalidInput("the campaign ends before it starts", code="invalid_input",
                           fields={"ends_on": ["before starts_on"]})
    with rt.db.transaction() as session:
        if session.get(Campaign, data["id"]) is not None:
            raise Conflict(f"campaign {data['id']!r} exists already", code="campaign_exists")
        campaign = Campaign(
            id=data["id"], city=data["city"], mode=data.get("mode"),
            starts_on=data["starts_on"], ends_on=data["ends_on"],
            goal_events=data["goal_events"], bonus_points=data["bonus_points"],
            budget_points=data["budget_points"], spent_points=0, title_zh=data["title_zh"],
            title_en=data["title_en"], created_by=admin.sub)
        session.add(campaign)
        session.flush()
        after = view(campaign)
        audit.record(session, actor=admin.sub, action="campaign.create",
                     target=f"campaign:{campaign.id}", reason=data["reason"], before=None,
                     after=_plain(after))
        return after


def end(rt: Runtime, admin: Principal, campaign_id: str, reason: str) -> dict[str, Any]:
    """End a campaign early: events credited from now on no longer count. 409 if ended."""
    with rt.db.transaction() as session:
        campaign = session.get(Campaign, campaign_id, with_for_update=True)
        if campaign is None:
            raise NotFound(f"no campaign {campaign_id!r}")
        if campaign.ended_at is not None:
            raise Conflict("the campaign has ended already", code="campaign_ended")
        # Wall time, as the crediting hook compares it with its own (the write's) time.
        campaign.ended_at = utcnow()
        audit.record(session, actor=admin.sub, action="campaign.end",
                     target=f"campaign:{campaign.id}", reason=reason,
                     before={"ended_at": None},
                     after={"ended_at": campaign.ended_at.isoformat()})
        return view(campaign)


def list_all(rt: Runtime, city: str | None) -> list[dict[str, Any]]:
    """Campaigns with their bonus report: points spent, users holding the bonus, users who
    met the goal when the budget was spent, users still on their way."""
    with rt.db.transaction() as session:
        query = select(Campaign).order_by(Campaign.starts_on.desc(), Campaign.id)
        if city is not None:
            query = query.where(Campaign.city == city)
        campaigns = list(session.scalars(query))
        states: dict[str, dict[str, int]] = {}
        for campaign_id, state, n in session.execute(
                select(CampaignProgress.campaign_id, CampaignProgress.state, func.count())
                .where(CampaignProgress.campaign_id.in_([c.id for c in campaigns]))
                .group_by(CampaignProgress.campaign_id, CampaignProgress.state)):
            states.setdefault(campaign_id, {})[state] = n
        return [{**view(c), "completed_users": states.get(c.id, {}).get("completed", 0),
                 "unfunded_users": states.get(c.id, {}).get("unfunded", 0),
                 "open_users": states.get(c.id, {}).get("open", 0)} for c in campaigns]


def mine(rt: Runtime, principal: Principal) -> list[dict[str, Any]]:
    """The campaigns of the user's city running or recently ended, with the user's
    progress (events counted, state, bonus held)."""
    with rt.db.transaction() as session:
        user = session.get(User, principal.sub)
        city = user.city if user is not None else (principal.city or rt.config.default_city)
        today = rt.clock().astimezone(rt.config.tz).date()
        rows = session.execute(
            select(Campaign, CampaignProgress)
            .outerjoin(CampaignProgress, (CampaignProgress.campaign_id == Campaign.id)
                       & (CampaignProgress.user_id == principal.sub))
            .where(Campaign.city == city,
                   Campaign.ends_on >= today - timedelta(days=SHOWN_AFTER_END_DAYS))
            .order_by(Campaign.ends_on, Campaign.id)).all()
        return [{"id": c.id, "title_zh": c.title_zh, "title_en": c.title_en,
                 "mode": c.mode, "starts_on": c.starts_on, "ends_on": c.ends_on,
                 "goal_events": c.goal_events, "bonus_points": c.bonus_points,
                 "running": c.starts_on <= today <= c.ends_on and c.ended_at is None,
                 "budget_left": c.spent_points < c.budget_points
                 and c.budget_points - c.spent_points >= c.bonus_points,
                 "events": p.events if p else 0, "state": p.state if p else "open",
                 "bonus_points_held": p.bonus_points if p else 0}
                for c, p in rows]


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, date | datetime) else v
            for k, v in value.items()}
