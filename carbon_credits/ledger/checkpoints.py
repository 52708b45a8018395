"""Ledger checkpoints: every account's chain head, written to a file outside the database.

The keyed chain (chain.py) stops anyone without the key from adding or rewriting entries,
but not from deleting an account's last entries (and setting its row back to the new last
one): what remains is still a valid chain. A checkpoint records each account's head
(user, seq, hash, balance) at a moment; verify-ledger --checkpoint then requires every
account to still hold the entry at that seq with that hash, so a deleted tail, or a tail
rewritten without the key, is named by account and seq.

The file is JSON lines: a header (format, time, the name of the key, the legacy boundary),
one line per account with entries, in user id order, and a last line holding the
HMAC-SHA256 of all bytes before it under the named chain key. HMAC rather than an Ed25519
signature: verifying needs the chain key anyway (the entries are HMACed), so a second
secret to keep and rotate would add nothing; the file lives with the operator (cron, then
copied off the database host), not with a third party who must verify without a secret.
Written to a temporary name and renamed, so a reader never sees half a file. Memory is
one batch of accounts, written and read as a stream.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, tuple_

from carbon_credits.ledger.chain import Keyring
from carbon_credits.ledger.verification import Problem
from carbon_credits.privacy import erasure
from carbon_credits.storage.db import Database
from carbon_credits.storage.models import (
    Account,
    Erasure,
    LedgerChainStart,
    LedgerEntry,
    utcnow,
)

FORMAT = "carbon-credits ledger checkpoint 1"
BATCH = 500
"""Accounts read (or checked) in one query."""


@dataclass
class Written:
    path: Path
    accounts: int
    key: str


def write(db: Database, keyring: Keyring, out: Path, now: datetime | None = None) -> Written:
    """Write a checkpoint of every account's head to ``out`` (one REPEATABLE READ snapshot
    on PostgreSQL), MACed under the current chain key."""
    name, key = keyring.current
    mac = hmac.new(key, digestmod="sha256")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    accounts = 0
    with db.transaction() as session, partial.open("wb") as fh:
        if session.get_bind().dialect.name == "postgresql":
            session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        start = session.get(LedgerChainStart, 1)

        def emit(record: dict[str, Any]) -> None:
            line = (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode()
            mac.update(line)
            fh.write(line)

        emit({"format": FORMAT, "created_at": (now or utcnow()).isoformat(), "key": name,
              "legacy_last_entry_id": start.legacy_last_entry_id if start else 0})
        after = ""
        while True:
            rows = session.execute(
                select(Account.user_id, Account.entry_count, Account.last_hash,
                       Account.balance_points)
                .where(Account.entry_count > 0, Account.user_id > after)
                .order_by(Account.user_id).limit(BATCH)).all()
            if not rows:
                break
            for user_id, seq, head, balance in rows:
                emit({"user": user_id, "seq": seq, "hash": head.hex(), "balance": balance})
            accounts += len(rows)
            after = rows[-1][0]
        fh.write((json.dumps({"mac": mac.hexdigest()}) + "\n").encode())
        fh.flush()
        os.fsync(fh.fileno())
    partial.replace(out)
    return Written(out, accounts, name)


def check(db: Database, keyring: Keyring, path: Path) -> Iterator[Problem]:
    """Every problem of the ledger against the checkpoint at ``path``: its MAC, then each
    account's entry at the checkpointed seq (missing: a deleted tail; another hash or
    balance: a rewritten one)."""
    where = f"checkpoint {path}"
    with path.open("rb") as fh:
        first = fh.readline()
        try:
            header = json.loads(first)
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            yield Problem(where, "not a ledger checkpoint")
            return
        key = keyring.named(str(header.get("key")))
        if key is None:
            yield Problem(where, f"made under key {header.get('key')!r}, which is not "
                                 "configured: cannot be trusted")
            return
        mac = hmac.new(key, first, digestmod="sha256")
        stored_mac: str | None = None
        batch: list[dict[str, Any]] = []
        for number, line in enumerate(fh, start=2):
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not (
                        "mac" in record or {"user", "seq", "hash", "balance"} <= record.keys()):
                    raise ValueError(line)
            except ValueError:
                yield Problem(where, f"line {number} is not a checkpoint record: the file "
                                     "was altered or cut short")
                return
            if "mac" in record:
                stored_mac = str(record["mac"])
                break
            mac.update(line)
            batch.append(record)
            if len(batch) == BATCH:
                yield from _heads(db, batch, keyring)
                batch = []
        yield from _heads(db, batch, keyring)
    if stored_mac is None or not hmac.compare_digest(mac.hexdigest(), stored_mac):
        yield Problem(where, "its MAC does not match its contents under key "
                             f"{header['key']!r}: the file was altered or cut short")
    with db.transaction() as session:
        start = session.get(LedgerChainStart, 1)
        if start is not None and start.legacy_last_entry_id != header.get(
                "legacy_last_entry_id"):
            yield Problem("ledger_chain_start", "legacy_last_entry_id "
                          f"{start.legacy_last_entry_id} but the checkpoint recorded "
                          f"{header.get('legacy_last_entry_id')}")


def _heads(db: Database, batch: list[dict[str, Any]], keyring: Keyring
           ) -> Iterator[Problem]:
    if not batch:
        return
    with db.transaction() as session:
        # An erased user's entries moved to their pseudonym, re-chained (privacy/erasure.py):
        # their checkpointed heads are gone by design, found by the subject's keyed hash.
        erased = set(session.scalars(select(Erasure.subject_mac).where(
            Erasure.subject_mac.in_([erasure.subject_mac(key, r["user"])
                                     for r in batch for _, key in keyring.keys]))))
        found = {(user_id, seq): (head, balance) for user_id, seq, head, balance in
                 session.execute(select(LedgerEntry.user_id, LedgerEntry.seq,
                                        LedgerEntry.hash, LedgerEntry.balance_after)
                                 .where(tuple_(LedgerEntry.user_id, LedgerEntry.seq).in_(
                                     [(r["user"], r["seq"]) for r in batch])))}
    for record in batch:
        where = f"account {record['user']}, seq {record['seq']}"
        stored = found.get((record["user"], record["seq"]))
        if stored is None and any(erasure.subject_mac(key, record["user"]) in erased
                                  for _, key in keyring.keys):
            continue
        if stored is None:
            yield Problem(where, "the checkpointed entry is gone (a deleted tail)")
        elif stored[0].hex() != record["hash"] or stored[1] != record["balance"]:
            yield Problem(where, "the entry differs from the checkpoint (a rewritten tail)")
