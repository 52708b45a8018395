"""A user's campaign progress, counted events and bonuses in the export, and their
erasure (``privacy.registry``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.storage.models import CampaignBonus, CampaignContribution, CampaignProgress

TABLES = (CampaignProgress, CampaignContribution, CampaignBonus)


def _export(session: Session, subject: Subject) -> dict[str, Any]:
    return {table.__tablename__: [columns(row) for row in session.scalars(
        select(table).where(table.user_id == subject.user_id))] for table in TABLES}


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    """Moved to the pseudonym, as the ledger entries are: a bonus entry is matched to its
    ``campaign_bonuses`` row by (user, seq), and a campaign's spent budget to what its
    users hold (verify-ledger), so these rows stay with the entries they explain."""
    for table in TABLES:
        session.execute(update(table).where(table.user_id == subject.user_id)
                        .values(user_id=pseudonym))


HOLDER = register(Holder("campaigns", ("campaign_progress", "campaign_contributions",
                                       "campaign_bonuses"), _export, _erase, order=450))
