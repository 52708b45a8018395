"""A user's bindings to scenario providers (and the binding codes they used): their part of
the export."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, func, literal, select, update
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.storage.models import BindingCode, ProviderBinding, utcnow


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


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    """Bindings are revoked and kept under the pseudonym (they record that a provider was
    authorised), without the provider's reference of the person (``user_ref``)."""
    session.execute(update(ProviderBinding).where(
        ProviderBinding.user_id == subject.user_id).values(
            user_id=pseudonym,
            user_ref=literal(pseudonym + "-") + cast(ProviderBinding.id, String),
            revoked_at=func.coalesce(ProviderBinding.revoked_at, utcnow())))
    session.execute(update(BindingCode).where(BindingCode.used_by == subject.user_id).values(
        used_by=pseudonym, user_ref=pseudonym))


HOLDER = register(Holder("bindings", ("provider_bindings", "provider_binding_codes"),
                         _export, _erase))
