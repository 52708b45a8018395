"""The devices (X-Device-Id) a user's events came from: their part of the export."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.storage.models import DeviceAccount


def _export(session: Session, subject: Subject) -> list[dict[str, Any]]:
    return [columns(d, ("user_id",)) for d in session.scalars(
        select(DeviceAccount).where(DeviceAccount.user_id == subject.user_id)
        .order_by(DeviceAccount.first_seen))]


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    """Deleted: a device id is an identifier, kept only to tell farms of accounts."""
    session.execute(delete(DeviceAccount).where(DeviceAccount.user_id == subject.user_id))


HOLDER = register(Holder("devices", ("device_accounts",), _export, _erase))
