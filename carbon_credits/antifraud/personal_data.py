"""The devices (X-Device-Id) a user's events came from: their part of the export, of
erasure and of retention."""

from __future__ import annotations

from datetime import datetime
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


def forget_old_devices(session: Session, before: datetime) -> int:
    """Retention: delete the device links first seen before ``before``. The rule on accounts
    per device then counts the accounts seen within the retention period; a device still
    in use is linked again by its next post."""
    result = session.execute(delete(DeviceAccount).where(DeviceAccount.first_seen < before))
    return int(getattr(result, "rowcount", 0) or 0)


HOLDER = register(Holder("devices", ("device_accounts",), _export, _erase))
