"""A user's bindings to scenario providers (and the binding codes they used): their part of
the export."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.storage.models import BindingCode, ProviderBinding


def _export(session: Session, subject: Subject) -> dict[str, Any]:
    return {
        "bindings": [columns(b) for b in session.scalars(
            select(ProviderBinding).where(ProviderBinding.user_id == subject.user_id)
            .order_by(ProviderBinding.id))],
        # The code itself is kept only as its hash: what the user typed is not held.
        "codes_used": [columns(c, ("code_hash",)) for c in session.scalars(
            select(BindingCode).where(BindingCode.used_by == subject.user_id)
            .order_by(BindingCode.used_at))],
    }


HOLDER = register(Holder("bindings", ("provider_bindings", "provider_binding_codes"),
                         _export))
