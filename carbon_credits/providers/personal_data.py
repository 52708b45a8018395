"""A user's bindings to scenario providers (and the binding codes they used), and the rows
of providers' record files refused for them: their part of the export and of erasure."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, func, literal, or_, select, update
from sqlalchemy.orm import Session

from carbon_credits.privacy.registry import Holder, Subject, columns, register
from carbon_credits.providers.files import ref_digest
from carbon_credits.storage.models import (
    BindingCode,
    ProviderBinding,
    RecordFile,
    RecordFileError,
    utcnow,
)

ERASED_REASON = "the user this row was for has erased their data"
MIN_QUOTED_REF = 6
"""References at least this long are also looked for inside error texts (rows written
before errors carried a digest, or a reason that quotes the row); a shorter one would
match unrelated text."""


def _references(session: Session, user_id: str) -> set[tuple[str, str]]:
    """(provider, user_ref) of every binding the user made, and of the codes they used."""
    bound = session.execute(select(ProviderBinding.provider_id, ProviderBinding.user_ref)
                            .where(ProviderBinding.user_id == user_id)).all()
    coded = session.execute(select(BindingCode.provider_id, BindingCode.user_ref)
                            .where(BindingCode.used_by == user_id)).all()
    return {(p, r) for p, r in bound} | {(p, r) for p, r in coded}


def _export(session: Session, subject: Subject) -> dict[str, Any]:
    digests = [ref_digest(p, r) for p, r in sorted(_references(session, subject.user_id))]
    return {
        "bindings": [columns(b) for b in session.scalars(
            select(ProviderBinding).where(ProviderBinding.user_id == subject.user_id)
            .order_by(ProviderBinding.id))],
        # The code itself is kept only as its hash: what the user typed is not held.
        "codes_used": [columns(c, ("code_hash",)) for c in session.scalars(
            select(BindingCode).where(BindingCode.used_by == subject.user_id)
            .order_by(BindingCode.used_at))],
        # Rows of providers' record files refused for the user (by their references).
        "record_file_errors": [columns(e, ("ref_digest",)) for e in session.scalars(
            select(RecordFileError).where(RecordFileError.ref_digest.in_(digests))
            .order_by(RecordFileError.file_id, RecordFileError.line))] if digests else [],
    }


def _scrub_record_file_errors(session: Session, references: set[tuple[str, str]]) -> None:
    """The error rows of the user's references keep their line and code (the provider's
    report still counts them) and lose what could name the person: the reason, the field
    (a repeated key's name is the row's own text) and the digest."""
    if not references:
        return
    scrubbed = {"field": "_row", "reason": ERASED_REASON, "ref_digest": None}
    session.execute(update(RecordFileError).where(RecordFileError.ref_digest.in_(
        [ref_digest(p, r) for p, r in sorted(references)])).values(**scrubbed))
    for provider_id, user_ref in sorted(references):
        if len(user_ref) < MIN_QUOTED_REF:
            continue
        session.execute(update(RecordFileError).where(
            RecordFileError.file_id.in_(select(RecordFile.id).where(
                RecordFile.provider_id == provider_id)),
            or_(RecordFileError.reason.contains(user_ref, autoescape=True),
                RecordFileError.field.contains(user_ref, autoescape=True)),
        ).values(**scrubbed).execution_options(synchronize_session=False))


def _erase(session: Session, subject: Subject, pseudonym: str) -> None:
    """Bindings are revoked and kept under the pseudonym (they record that a provider was
    authorised), without the provider's reference of the person (``user_ref``); the
    record-file errors of those references are scrubbed first, while they are known."""
    _scrub_record_file_errors(session, _references(session, subject.user_id))
    session.execute(update(ProviderBinding).where(
        ProviderBinding.user_id == subject.user_id).values(
            user_id=pseudonym,
            user_ref=literal(pseudonym + "-") + cast(ProviderBinding.id, String),
            revoked_at=func.coalesce(ProviderBinding.revoked_at, utcnow())))
    session.execute(update(BindingCode).where(BindingCode.used_by == subject.user_id).values(
        used_by=pseudonym, user_ref=pseudonym))


HOLDER = register(Holder("bindings", ("provider_bindings", "provider_binding_codes"),
                         _export, _erase))
