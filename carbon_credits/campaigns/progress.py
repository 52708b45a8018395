"""Campaign progress, moved in the unit of work that credits (or reverses) an event: the
crediting hook (``ledger.hooks``) of campaigns. The decisions are ``rules``; this module
reads and writes them.

Race-free budget: the bonus is paid by ``UPDATE campaigns SET spent_points = spent_points
+ bonus WHERE id = ? AND spent_points + bonus <= budget_points``: on PostgreSQL concurrent
finishers queue on the campaign row and each re-checks the condition once the one before
it commits, so the budget is never exceeded (and a CHECK on the table says so too).
Several campaigns are paid in campaign id order, after the accounts (locked first), so two
transactions take the rows in one order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from carbon_credits.campaigns import rules
from carbon_credits.ledger import entries
from carbon_credits.ledger.entries import Balance
from carbon_credits.ledger.hooks import CreditedEvent, Rows, Scope, Writes
from carbon_credits.storage.cached import Cached
from carbon_credits.storage.models import (
    Campaign,
    CampaignBonus,
    CampaignContribution,
    CampaignProgress,
    LedgerEntry,
)
from carbon_credits.storage.sql import Prebuilt, Read
from carbon_credits.webhooks import outbox

CAMPAIGNS = cast(Table, Campaign.__table__)
PROGRESS = cast(Table, CampaignProgress.__table__)
CONTRIBUTIONS = cast(Table, CampaignContribution.__table__)
BONUSES = cast(Table, CampaignBonus.__table__)
ENTRIES = cast(Table, LedgerEntry.__table__)

_PROGRESS_COLUMNS = ("user_id", "campaign_id", "events", "state", "bonus_points",
                     "completed_at", "updated_at")


def _inserting(table: Table, columns: Sequence[str]) -> Prebuilt:
    return Prebuilt(lambda _: insert(table).values({c: bindparam(c) for c in columns}))


_ADD_PROGRESS = _inserting(PROGRESS, _PROGRESS_COLUMNS)
_SAVE_PROGRESS = Prebuilt(lambda _: (
    update(PROGRESS).where(PROGRESS.c.user_id == bindparam("b_user_id"),
                           PROGRESS.c.campaign_id == bindparam("b_campaign_id"))
    .values({c: bindparam(f"b_{c}") for c in _PROGRESS_COLUMNS
             if c not in ("user_id", "campaign_id")})))
_ADD_CONTRIBUTION = _inserting(CONTRIBUTIONS, ("user_id", "event_pk", "campaign_id"))
_ADD_BONUS = _inserting(BONUSES, ("user_id", "seq", "campaign_id", "event_pk", "points",
                                  "created_at"))
_ADD_ENTRY = _inserting(ENTRIES, ("user_id", "seq", "kind", "points", "ug", "balance_after",
                                  "event_pk", "redemption_pk", "mode", "factor_version_id",
                                  "created_at", "hash"))


@dataclass
class _Stored:
    progress: rules.Progress
    stored: bool
    completed_at: datetime | None


@dataclass
class _Changes:
    progress: dict[tuple[str, str], _Stored] = field(default_factory=dict)
    contributions: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    bonuses: list[dict[str, Any]] = field(default_factory=list)
    touched: set[tuple[str, str]] = field(default_factory=set)
    """The progress rows this transaction moved (only those are written)."""

    def writes(self, session: Session, now: datetime) -> Writes:
        moved = [self.progress[key] for key in sorted(self.touched)]

        def run() -> None:
            rows = [{"user_id": s.progress.user_id, "campaign_id": s.progress.campaign_id,
                     "events": s.progress.events, "state": s.progress.state,
                     "bonus_points": s.progress.bonus_points,
                     "completed_at": s.completed_at, "updated_at": now} for s in moved]
            _ADD_PROGRESS.run(session, [r for r, s in zip(rows, moved, strict=True)
                                        if not s.stored])
            _SAVE_PROGRESS.run(session, [{f"b_{k}": v for k, v in r.items()}
                                         for r, s in zip(rows, moved, strict=True)
                                         if s.stored])
            _ADD_CONTRIBUTION.run(session, self.contributions)
            _ADD_ENTRY.run(session, self.entries)
            _ADD_BONUS.run(session, self.bonuses)
        return run


def _campaign(row: Campaign) -> rules.Campaign:
    return rules.Campaign(row.id, row.city, row.mode, row.starts_on, row.ends_on,
                          row.goal_events, row.bonus_points, row.ended_at)


def _candidate(event: CreditedEvent) -> rules.Candidate:
    return rules.Candidate(event.user_id, event.city, event.mode, event.local_date,
                           event.credited_ug)


def _load_progress(session: Session, users: set[str], campaign_ids: set[str],
                   changes: _Changes) -> None:
    for row in session.scalars(select(CampaignProgress).where(
            CampaignProgress.user_id.in_(sorted(users)),
            CampaignProgress.campaign_id.in_(sorted(campaign_ids)))):
        changes.progress[(row.user_id, row.campaign_id)] = _Stored(
            rules.Progress(row.campaign_id, row.user_id, row.events, row.state,
                           row.bonus_points), True, row.completed_at)


def _all(session: Session) -> list[rules.Campaign]:
    return [_campaign(row) for row in session.scalars(select(Campaign).order_by(Campaign.id))]


CAMPAIGNS_KEPT = Cached("campaigns", _all)
"""Every campaign as the rules read it, kept in the process (``storage.cached``): read on
every credit. Without its budget (``spent_points`` moves with every bonus, and is only
ever tested by the paying UPDATE)."""


def _running(campaigns: Sequence[rules.Campaign], scope: Scope) -> list[rules.Campaign]:
    """The campaigns a chunk's events may count toward (by city and local days)."""
    return [c for c in campaigns if c.city in scope.cities
            and c.starts_on <= scope.last_day and c.ends_on >= scope.first_day]


_PROGRESS = Prebuilt(lambda one_of: select(
    PROGRESS.c.campaign_id, PROGRESS.c.user_id, PROGRESS.c.events, PROGRESS.c.state,
    PROGRESS.c.bonus_points, PROGRESS.c.completed_at).where(one_of(PROGRESS.c.user_id, "users")))
"""The chunk's users' progress (in any campaign: a user is in few; by the user key, so
routed to the user's shard on Citus, where a join with the campaigns would not be)."""


def _progress(changes: _Changes, user_id: str, campaign_id: str) -> _Stored:
    key = (user_id, campaign_id)
    changes.touched.add(key)
    if key not in changes.progress:
        changes.progress[key] = _Stored(rules.Progress(campaign_id, user_id), False, None)
    return changes.progress[key]


def _pay(session: Session, campaign: rules.Campaign) -> bool:
    """Spend the bonus from the budget if it covers it (race-free, see the module)."""
    result = session.execute(
        update(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign.id,
                                CAMPAIGNS.c.spent_points + campaign.bonus_points
                                <= CAMPAIGNS.c.budget_points)
        .values(spent_points=CAMPAIGNS.c.spent_points + campaign.bonus_points))
    return bool(getattr(result, "rowcount", 0))


def _refund(session: Session, campaign_id: str, points: int) -> None:
    session.execute(update(CAMPAIGNS).where(CAMPAIGNS.c.id == campaign_id)
                    .values(spent_points=CAMPAIGNS.c.spent_points - points))


class CampaignHook:
    """``ledger.hooks.Hook`` of campaigns."""

    def read(self, session: Session, scope: Scope) -> Sequence[Read]:
        kept = CAMPAIGNS_KEPT.peek(session)
        if kept is not None and not _running(kept, scope):
            return []  # no campaign runs for these events: no progress to read
        return [(_PROGRESS, {"users": list(scope.users)})]

    def credited(self, session: Session, events: Sequence[CreditedEvent],
                 accounts: Mapping[str, Balance], now: datetime, rows: Rows
                 ) -> Writes | None:
        running = {c.id: c for c in _running(CAMPAIGNS_KEPT.get(session), Scope.of(events))}
        if not running:
            return None
        # (Read with ingest's reads: ``read`` planned it from the same copy.)
        [progress] = rows or [_PROGRESS.rows(session, {"users": sorted(
            {e.user_id for e in events})})]
        changes = _Changes()
        for campaign_id, user_id, n, state, held, completed_at in progress:
            if campaign_id in running:
                changes.progress[(user_id, campaign_id)] = _Stored(
                    rules.Progress(campaign_id, user_id, n, state, held), True, completed_at)
        due: list[tuple[rules.Campaign, _Stored, CreditedEvent]] = []
        for event in events:
            candidate = _candidate(event)
            for campaign in running.values():
                if not rules.counts(campaign, candidate, now):
                    continue
                stored = _progress(changes, event.user_id, campaign.id)
                changes.contributions.append({"user_id": event.user_id, "event_pk": event.id,
                                              "campaign_id": campaign.id})
                if rules.count(stored.progress, campaign):
                    due.append((campaign, stored, event))
        if not changes.contributions:
            return None
        for campaign, stored, event in sorted(due, key=lambda d: d[0].id):
            if _pay(session, campaign):
                rules.paid(stored.progress, campaign)
                stored.completed_at = now
                self._bonus(changes, accounts[event.user_id], campaign.id, event,
                            campaign.bonus_points, now)
                outbox.publish(session, "challenge.completed", {
                    "user_id": event.user_id, "campaign_id": campaign.id,
                    "event_id": event.event_id, "bonus_points": campaign.bonus_points,
                    "completed_at": now.isoformat()})
            else:
                rules.unfunded(stored.progress)
                stored.completed_at = now
        return changes.writes(session, now)

    @staticmethod
    def _bonus(changes: _Changes, account: Balance, campaign_id: str, event: CreditedEvent,
               points: int, now: datetime) -> None:
        entry = entries.bonus_entry(account, points=points, now=now)
        changes.entries.append(entry)
        changes.bonuses.append({"user_id": account.user_id, "seq": entry["seq"],
                                "campaign_id": campaign_id, "event_pk": event.id,
                                "points": points, "created_at": now})

    def reversed(self, session: Session, event: CreditedEvent, account: Balance,
                 now: datetime) -> None:
        counted = sorted(session.scalars(select(CampaignContribution.campaign_id).where(
            CampaignContribution.user_id == event.user_id,
            CampaignContribution.event_pk == event.id)))
        if not counted:
            return
        changes = _Changes()
        _load_progress(session, {event.user_id}, set(counted), changes)
        for row in session.scalars(select(Campaign).where(Campaign.id.in_(counted))
                                   .order_by(Campaign.id)):
            stored = _progress(changes, event.user_id, row.id)
            taken = rules.uncount(stored.progress, _campaign(row))
            if taken:
                _refund(session, row.id, taken)
                self._bonus(changes, account, row.id, event, -taken, now)
        changes.writes(session, now)()


HOOK = CampaignHook()
