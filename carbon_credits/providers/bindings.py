"""Consent: a user binds their account to a provider's reference for them, and may revoke.

The provider issues a one-time code for its reference (``user_ref``); the user, signed in,
gives the code back with the provider's id. The code is single-use, expires
(BINDING_CODE_TTL_S) and only binds to the provider that issued it; only its SHA-256 is
stored. Bindings are never deleted: a revocation sets ``revoked_at`` and a new bind is a new
row, so who was bound to what, and when, stays answerable. ``resolve`` is what the
crediting path asks: which of a provider's references are bound now, and to whom.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from carbon_credits.errors import Conflict, InvalidInput, NotFound
from carbon_credits.providers.registry import Provider
from carbon_credits.runtime import Runtime
from carbon_credits.storage.models import BindingCode, ProviderBinding
from carbon_credits.storage.models import Provider as ProviderRow
from carbon_credits.tokens import Principal

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
"""No 0/O, 1/I/L, U: a code is read off a screen and typed."""
CODE_CHARS = 10
"""30^10, about 2^49: guessing a live code among the few a provider has out is hopeless
within its few minutes, and each guess must come with a signed-in user's token."""


def new_code() -> str:
    chars = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_CHARS))
    return f"{chars[:5]}-{chars[5:]}"


def code_hash(code: str) -> str:
    """The stored form of a code; dashes, spaces and case as the user typed them ignored."""
    normal = "".join(c for c in code.upper() if c.isalnum())
    return hashlib.sha256(normal.encode()).hexdigest()


def binding_view(row: ProviderBinding) -> dict[str, Any]:
    return {"provider_id": row.provider_id, "user_ref": row.user_ref, "bound_at": row.bound_at,
            "revoked_at": row.revoked_at}


def issue_code(rt: Runtime, provider: Provider, user_ref: str) -> dict[str, Any]:
    """A one-time code that binds ``user_ref`` of ``provider`` to whoever presents it."""
    code = new_code()
    now = rt.clock()
    expires = now + timedelta(seconds=rt.config.binding_code_ttl_s)
    with rt.db.transaction() as session:
        session.add(BindingCode(code_hash=code_hash(code), provider_id=provider.id,
                                user_ref=user_ref, created_at=now, expires_at=expires))
    return {"code": code, "user_ref": user_ref, "expires_at": expires}


def _invalid_code() -> InvalidInput:
    # One answer for a code that never existed and one of another provider: which
    # provider issued a code is not told to whoever guesses codes.
    return InvalidInput("no such binding code for this provider", code="invalid_code",
                        fields={"code": ["unknown for this provider"]})


def bind(rt: Runtime, principal: Principal, provider_id: str, code: str
         ) -> tuple[dict[str, Any], bool]:
    """Bind the caller to the code's ``user_ref``; (binding, whether it is new).

    A retry by the same user with the code they used is answered with the binding it made
    (not new); any other use of a used code is a 409.
    """
    now = rt.clock()
    digest = code_hash(code)
    with rt.db.transaction() as session:
        provider = session.get(ProviderRow, provider_id)
        issued = session.get(BindingCode, digest, with_for_update=True)
        if provider is None or issued is None or issued.provider_id != provider_id:
            raise _invalid_code()
        if not provider.enabled:
            raise Conflict(f"provider {provider_id!r} is disabled", code="provider_disabled")
        if issued.used_at is not None:
            existing = _active(session, provider_id, principal.sub)
            if (issued.used_by == principal.sub and existing is not None
                    and existing.user_ref == issued.user_ref):
                return binding_view(existing), False
            raise Conflict("this binding code was used already", code="code_used")
        if issued.expires_at <= now:
            raise InvalidInput("this binding code has expired: ask the provider for a new one",
                               code="code_expired", fields={"code": ["expired"]})
        if _active(session, provider_id, principal.sub) is not None:
            raise Conflict(f"you are bound to {provider_id!r} already: revoke that first",
                           code="already_bound")
        taken = session.scalar(select(ProviderBinding.id).where(
            ProviderBinding.provider_id == provider_id,
            ProviderBinding.user_ref == issued.user_ref, ProviderBinding.revoked_at.is_(None)))
        if taken is not None:
            raise Conflict("this provider account is bound to another user",
                           code="ref_already_bound")
        # Conditional: of two concurrent uses of one code, one changes the row.
        used = session.execute(update(BindingCode).where(
            BindingCode.code_hash == digest, BindingCode.used_at.is_(None)).values(
            used_at=now, used_by=principal.sub))
        if getattr(used, "rowcount", 1) != 1:
            raise Conflict("this binding code was used already", code="code_used")
        row = ProviderBinding(provider_id=provider_id, user_ref=issued.user_ref,
                              user_id=principal.sub, bound_at=now)
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            # A concurrent bind won the partial unique index; this one rolls back whole.
            raise Conflict("a binding was made concurrently", code="already_bound") from None
        return binding_view(row), True


def _active(session: Session, provider_id: str, user_id: str) -> ProviderBinding | None:
    return session.scalar(select(ProviderBinding).where(
        ProviderBinding.provider_id == provider_id, ProviderBinding.user_id == user_id,
        ProviderBinding.revoked_at.is_(None)))


def revoke(rt: Runtime, principal: Principal, provider_id: str) -> dict[str, Any]:
    """End the caller's binding to ``provider_id``; the row stays, with the time."""
    with rt.db.transaction() as session:
        row = session.scalar(select(ProviderBinding).where(
            ProviderBinding.provider_id == provider_id,
            ProviderBinding.user_id == principal.sub,
            ProviderBinding.revoked_at.is_(None)).with_for_update())
        if row is None:
            raise NotFound(f"you are not bound to {provider_id!r}", code="not_bound")
        row.revoked_at = rt.clock()
        return binding_view(row)


def list_for(rt: Runtime, principal: Principal, include_revoked: bool) -> list[dict[str, Any]]:
    with rt.db.transaction() as session:
        query = select(ProviderBinding).where(ProviderBinding.user_id == principal.sub)
        if not include_revoked:
            query = query.where(ProviderBinding.revoked_at.is_(None))
        return [binding_view(r) for r in session.scalars(
            query.order_by(ProviderBinding.bound_at.desc(), ProviderBinding.id.desc()))]


def resolve(session: Session, provider_id: str, user_refs: Collection[str]) -> dict[str, str]:
    """user_ref -> user_id for the refs with an active binding now; the others are absent.

    One query, in the caller's transaction (the crediting path's): a revocation committed
    before it is seen, so a revoked user is never credited from then on.
    """
    if not user_refs:
        return {}
    rows = session.execute(select(ProviderBinding.user_ref, ProviderBinding.user_id).where(
        ProviderBinding.provider_id == provider_id,
        ProviderBinding.user_ref.in_(list(set(user_refs))),
        ProviderBinding.revoked_at.is_(None)))
    return {ref: user for ref, user in rows}
