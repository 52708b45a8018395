"""Pending, settled and claimed points: a city may hold credits back before they can be
spent (SETTLEMENT_DAYS, e.g. Beijing MaaS's 2 days for operator confirmation) and make users
claim them within a window (CLAIM_DAYS, Beijing's 7), after which unclaimed points lapse.

Points are in the ledger (and the balance) from the earn entry on; what is pending or
unclaimed is told by the entries themselves, nothing is edited:

- **pending**: an earn entry younger than the city's settlement delay whose event is not
  reversed. It settles by the passing of time (the delay is the rule), so no job has to
  touch it; reversed before then, its points fall away with the reversal entry.
- **unclaimed** (only with a claim window): a settled earn entry after the user's
  ``point_claims.resolved_seq``, not reversed and not lapsed. ``POST /v1/me/claims`` claims
  every settled one (the watermark moves to the newest); ``flask expire-points`` writes a
  **'lapse'** entry (its points, naming its event: one per event by the ledger's unique
  index) for each left unclaimed past the window, then moves the watermark.

Pending and unclaimed points cannot be spent, nor can **reserved** ones (the points of
held redemptions, ``ledger.redemptions``: a physical good not yet shipped): a redemption
needs ``available = balance - pending - unclaimed - reserved >= points``. So
``available + pending + unclaimed + reserved == balance`` always (``split``), and a debt
(negative balance) shows as a negative available, never hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal, select
from sqlalchemy.orm import Session, aliased

from carbon_credits.config import Config
from carbon_credits.errors import Conflict
from carbon_credits.ledger import entries
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import (
    Account,
    LedgerEntry,
    PointClaim,
    RewardRedemption,
    User,
)
from carbon_credits.tokens import Principal

LAPSE_GRACE = timedelta(days=2)
"""How long past its window an unclaimed credit may still be lapsed (runs of the job
missed); older ones count as claimed."""


@dataclass(frozen=True)
class Rule:
    delay: timedelta
    claim: timedelta | None


def rule_for(config: Config, city: str) -> Rule | None:
    """The city's rule, or None: credits settle at once and need no claim (the default)."""
    delay, claim = config.settlement_days.get(city, 0), config.claim_days.get(city)
    if not delay and claim is None:
        return None
    return Rule(timedelta(days=delay), None if claim is None else timedelta(days=claim))


@dataclass
class Held:
    """A user's credits not yet spendable, and the newest settled unclaimed entry."""

    pending: int = 0
    unclaimed: int = 0
    settled_through: int = 0
    """The seq of the newest settled earn entry considered (a claim moves the watermark
    there)."""
    lapsing: list[tuple[int, int, int]] | None = None
    """(seq, event_pk, points) of unclaimed entries past the claim window."""


def held(session: Session, user_id: str, rule: Rule | None, now: datetime) -> Held:
    """What of a user's balance is pending or unclaimed at ``now``."""
    out = Held(lapsing=[])
    if rule is None:
        return out
    undone = aliased(LedgerEntry)
    query = (select(LedgerEntry.seq, LedgerEntry.event_pk, LedgerEntry.points,
                    LedgerEntry.created_at)
             .outerjoin(undone, and_(undone.event_pk == LedgerEntry.event_pk,
                                     undone.kind.in_(("reversal", "lapse"))))
             .where(LedgerEntry.user_id == user_id, LedgerEntry.kind == "earn",
                    LedgerEntry.points > 0, undone.id.is_(None)))
    if rule.claim is None:
        query = query.where(LedgerEntry.created_at > now - rule.delay)
    else:
        resolved = session.scalar(select(PointClaim.resolved_seq)
                                  .where(PointClaim.user_id == user_id)) or 0
        # Credits older than the window and a grace for missed job runs count as claimed:
        # a claim window enabled for a city with a history does not lapse its past points.
        query = query.where(LedgerEntry.seq > resolved, LedgerEntry.created_at
                            > now - rule.delay - rule.claim - LAPSE_GRACE)
    for seq, event_pk, points, created_at in session.execute(query.order_by(LedgerEntry.seq)):
        if created_at > now - rule.delay:
            out.pending += points
            continue
        out.unclaimed += points
        out.settled_through = seq
        if rule.claim is not None and created_at <= now - rule.delay - rule.claim:
            assert out.lapsing is not None
            if event_pk is not None:
                out.lapsing.append((seq, event_pk, points))
    return out


HELD_STATE = "pending"
"""The state of a held redemption (``RewardRedemption.hold``) whose points are reserved: a
physical good not yet shipped. Shipping spends them; cancelling releases them."""


def reserved(session: Session, user_id: str) -> int:
    """The points of the user's open holds (read under the account lock by a redemption:
    holds are made, fulfilled and released only under it)."""
    return int(session.scalar(
        select(func.coalesce(func.sum(RewardRedemption.points), 0))
        .where(RewardRedemption.user_id == user_id, RewardRedemption.state == HELD_STATE,
               RewardRedemption.hold.is_(True))) or 0)


def split(balance: int, pending: int, unclaimed: int, reserved: int) -> dict[str, int]:
    """An account's balance split: available + pending + unclaimed + reserved == balance.
    Every part but available is >= 0; available is what may be spent, negative only under
    a debt or when a reversal took points a hold had reserved."""
    return {"available": balance - pending - unclaimed - reserved, "pending": pending,
            "unclaimed": unclaimed, "reserved": reserved}


def available(session: Session, account: Account, config: Config, now: datetime) -> int:
    """What a locked account may spend: its balance less pending, unclaimed and reserved
    points."""
    rule = rule_for(config, account.user.city)
    h = held(session, account.user_id, rule, now) if rule is not None else Held()
    return split(account.balance_points, h.pending, h.unclaimed,
                 reserved(session, account.user_id))["available"]


def summary(session: Session, user_id: str, city: str, balance: int, config: Config,
            now: datetime) -> dict[str, Any]:
    """The account's split (``split``)."""
    h = held(session, user_id, rule_for(config, city), now)
    return split(balance, h.pending, h.unclaimed, reserved(session, user_id))


def claim(rt: Runtime, principal: Principal) -> dict[str, Any]:
    """Claim every settled credit: idempotent, a second claim finds none. Credits already
    past the window lapse here, as the job would lapse them."""
    now = rt.clock()
    with rt.db.transaction() as session:
        account = entries.lock_account(session, principal.sub,
                                       principal.city or rt.config.default_city)
        rule = rule_for(rt.config, account.user.city)
        if rule is None or rule.claim is None:
            raise Conflict("points of this city need no claim", code="no_claim_needed")
        h = held(session, principal.sub, rule, now)
        lapsed = _lapse(session, account, h, now)
        claimed = h.unclaimed - lapsed
        if h.settled_through:
            _resolve(session, principal.sub, h.settled_through, now)
        return {"claimed": claimed, "lapsed": lapsed, "pending": h.pending,
                "balance": account.balance_points}


def _lapse(session: Session, account: Account, h: Held, now: datetime) -> int:
    """Lapse the account's credits past the claim window; the points."""
    total = 0
    for seq, event_pk, points in h.lapsing or []:
        entries.lapse(session, account, points=points, event_pk=event_pk, now=now)
        total += points
        # Unclaimed credits are settled oldest first: all before this one lapse too.
        _resolve(session, account.user_id, seq, now)
    return total


def _resolve(session: Session, user_id: str, seq: int, now: datetime) -> None:
    row = session.get(PointClaim, user_id)
    if row is None:
        session.add(PointClaim(user_id=user_id, resolved_seq=seq, updated_at=now))
    elif seq > row.resolved_seq:
        row.resolved_seq, row.updated_at = seq, now


def lapse_unclaimed(rt: Runtime, now: datetime, batch: int = 500) -> int:
    """Write a 'lapse' entry for every credit left unclaimed past its city's window; the
    points that lapsed. Batches of accounts, one short transaction each."""
    cities = sorted(c for c in rt.config.claim_days)
    if not cities:
        return 0
    total, after = 0, ""
    while True:
        with rt.db.transaction() as session:
            resolved = aliased(PointClaim)
            users = list(session.scalars(
                select(Account.user_id).join(User, User.id == Account.user_id)
                .outerjoin(resolved, resolved.user_id == Account.user_id)
                .where(User.city.in_(cities), Account.user_id > after,
                       Account.entry_count > func.coalesce(resolved.resolved_seq, literal(0)))
                .order_by(Account.user_id).limit(batch)))
            if not users:
                return total
            after = users[-1]
            for account in session.scalars(select(Account).where(Account.user_id.in_(users))
                                           .order_by(Account.user_id).with_for_update()):
                city = session.scalar(select(User.city).where(User.id == account.user_id))
                rule = rule_for(rt.config, city or "")
                if rule is None or rule.claim is None:
                    continue
                total += _lapse(session, account, held(session, account.user_id, rule, now),
                                now)
