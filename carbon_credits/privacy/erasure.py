"""Erasure (DELETE /v1/me, or an admin's, with a reason): the user's identifiers and trip
details are removed or replaced by a random pseudonym, in one transaction.

What happens (each feature's eraser, ``registry``; README "Erasure" lists what is kept):

- rows that exist only to serve the person (devices, cap usage, the user and account
  rows) are deleted; rows that other records or the totals stand on (events, ledger
  entries, redemptions, reward redemptions, bindings, consents) move to the pseudonym
  ``erased-<random>``, with their personal details cleared: an event keeps its city,
  local day, mode, quantities, grams, points and versions, and loses its client event
  id, stations, line, times of day, device id and payload hash;
- the ledger entries are re-chained under the chain key for the pseudonym (the chain
  covers the user id), after their old chain was checked, so verify-ledger passes and an
  account tampered with before is not laundered by its erasure;
- the audit log (append-only) names users by a reference only (``audit_refs``), which
  moves to the pseudonym; providers' record-file errors of the user's references lose
  their reason (``providers.personal_data``);
- report rollups are not touched: partner reports and the MRV export keep their totals;
- an ``erasures`` row keeps the pseudonym and ``subject_mac``, a keyed hash of the
  subject under the chain key: the subject itself is stored nowhere, yet its tokens are
  refused (``ErasedSubjects``) and a second erasure answers the first (idempotent).

The pseudonym is random, not derived from the subject: nothing can map it back.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from carbon_credits.privacy import audit_refs
from carbon_credits.privacy.registry import HOLDERS, Subject
from carbon_credits.storage.db import Database
from carbon_credits.storage.models import Account, AuditRecord, Erasure, User, utcnow

log = logging.getLogger(__name__)

PSEUDONYM_PREFIX = "erased-"
"""An erased user's rows carry ``erased-<24 hex digits>``; the ledger trigger admits a move
of entries to such an id only (migration 0009)."""

Keys = Sequence[tuple[str, bytes]]
"""The ledger chain keys, by name, the current first (``ledger.chain.Keyring.keys``)."""


def subject_mac(key: bytes, subject: str) -> bytes:
    """The keyed hash an erased subject is known by."""
    return hmac.digest(key, f"erased-subject|{subject}".encode(), "sha256")


def new_pseudonym() -> str:
    return PSEUDONYM_PREFIX + secrets.token_hex(12)


@dataclass(frozen=True)
class Erased:
    pseudonym: str
    erased_at: Any
    actor: str
    already: bool
    """True when the subject had been erased before: nothing was done this time."""

    def view(self) -> dict[str, Any]:
        return {"erased": True, "pseudonym": self.pseudonym, "erased_at": self.erased_at,
                "by": self.actor, "already": self.already}


def find(session: Session, keys: Keys, subject: str) -> Erasure | None:
    macs = [subject_mac(key, subject) for _, key in keys]
    return session.scalars(select(Erasure).where(Erasure.subject_mac.in_(macs))).first()


def erase(db: Database, subject: str, keys: Keys, actor: str, reason: str,
          services: Mapping[str, Any], erased: ErasedSubjects | None = None) -> Erased:
    """Erase ``subject``'s personal data (every registered holder's eraser, in order), in
    one transaction under the account's lock; audited under the pseudonym, not the
    subject. Erasing an erased subject again changes nothing and answers the first."""
    with db.transaction() as session:
        known = find(session, keys, subject)
        if known is not None:
            return Erased(known.pseudonym, known.erased_at, known.actor, already=True)
        # The account's lock: no post of the user is applied while its rows move.
        session.execute(select(Account.user_id).where(Account.user_id == subject)
                        .with_for_update())
        pseudonym, now = new_pseudonym(), utcnow()
        # The user row too: an admin's freeze (which locks it) either committed before,
        # its audit reference then moved with the rest, or finds no user after.
        user = session.get(User, subject, with_for_update=True)
        if user is not None:
            # The pseudonym's own rows first: what moves to it points at them.
            session.add(User(id=pseudonym, city=user.city, frozen=True, created_at=now))
            account = session.get(Account, subject)
            if account is not None:
                session.add(Account(
                    user_id=pseudonym, balance_points=account.balance_points,
                    lifetime_points=account.lifetime_points,
                    lifetime_ug=account.lifetime_ug, carry_ug=account.carry_ug,
                    entry_count=account.entry_count, last_hash=account.last_hash,
                    updated_at=now))
            session.flush()
        who = Subject(subject, services)
        for holder in sorted(HOLDERS.values(), key=lambda h: (h.order, h.name)):
            if holder.erase is not None:
                holder.erase(session, who, pseudonym)
        name, key = keys[0]
        session.add(Erasure(subject_mac=subject_mac(key, subject), key_name=name,
                            pseudonym=pseudonym, erased_at=now, actor=actor, reason=reason))
        # Under the user's audit reference (moved to the pseudonym by now: audit_refs),
        # so the log reads "subject X frozen ... then erased", naming nobody.
        session.add(AuditRecord(actor=actor, action="user.erase", target=pseudonym,
                                reason=reason, before=None,
                                after={"pseudonym": pseudonym, "holders": sorted(HOLDERS)},
                                subject_ref=audit_refs.subject_ref(session, pseudonym)))
    if erased is not None:
        erased.add(subject_mac(key, subject))
    return Erased(pseudonym, now, actor, already=False)


class ErasedSubjects:
    """The keyed hashes of erased subjects, kept in this process and read again from
    ``erasures`` at most every ``REFRESH_S`` (only the rows added since): a token of an
    erased subject is refused at once in the process that erased it, and within that
    time in the others, with no database read per request."""

    REFRESH_S = 2.0

    def __init__(self) -> None:
        self._macs: set[bytes] = set()
        self._last_id = 0
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def add(self, mac: bytes) -> None:
        self._macs.add(mac)

    def is_erased(self, db: Database, keys: Keys, subject: str) -> bool:
        self._refresh(db)
        return any(subject_mac(key, subject) in self._macs for _, key in keys)

    def _refresh(self, db: Database) -> None:
        if time.monotonic() - self._checked < self.REFRESH_S:
            return
        with self._lock:
            if time.monotonic() - self._checked < self.REFRESH_S:
                return
            try:
                with db.transaction() as session:
                    rows = session.execute(select(Erasure.id, Erasure.subject_mac)
                                           .where(Erasure.id > self._last_id)
                                           .order_by(Erasure.id)).all()
            except SQLAlchemyError as exc:
                # The primary unreachable: keep what is known and try again later. A
                # request that needs the primary fails on its own; one that does not (a
                # report from the replica) is not refused for this.
                log.warning("erased subjects not refreshed: %s", type(exc).__name__)
                self._checked = time.monotonic()
                return
            for row_id, mac in rows:
                self._macs.add(mac)
                self._last_id = row_id
            self._checked = time.monotonic()
