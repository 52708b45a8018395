"""The consents a user gave and withdrew: their part of the export."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from carbon_credits.privacy import consents
from carbon_credits.privacy.registry import Holder, Subject, register


def _export(session: Session, subject: Subject) -> list[dict[str, Any]]:
    return consents.history(session, subject.user_id)


HOLDER = register(Holder("consents", ("consents",), _export))
