"""Idempotency: every event is applied at most once per (user, event_id).

The parts, each where it must live:

- **The key.** A unique constraint on events (user_id, event_id) (storage/models.py), so
  the database refuses a second copy whatever the code does.
- **Serialisation.** A user's writes run under their account row lock
  (ledger/entries.py), so the copies of one post arriving together meet one after another.
- **Replay or conflict** (here): a post whose (user, event_id) is stored answers the stored
  result and credits nothing; one with another payload is a 409. Payloads are compared by
  a hash of the validated, canonical payload, so the same instant written in another
  offset is the same event.
- **The race the lock cannot cover** (a copy committed while the account was being
  created) meets the constraint and is tried again, when it is answered as a replay
  (ingest/retry.py, rule 1).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any

from carbon_credits.errors import Conflict


def canonical_payload(data: dict[str, Any]) -> dict[str, Any]:
    """The validated payload in a canonical JSON form: instants in UTC, dates ISO."""

    def norm(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat()
        if isinstance(value, date):
            return value.isoformat()
        return value

    return {k: norm(v) for k, v in sorted(data.items())}


def payload_hash(payload: dict[str, Any]) -> bytes:
    """SHA-256 of the canonical payload, as 32 bytes (stored so, not as 64 hex digits)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).digest()


def is_replay(stored_hash: bytes, digest: bytes) -> bool:
    """True for a post of an event already stored with the same payload; a 409 for one
    stored with another."""
    if stored_hash != digest:
        raise Conflict("event_id was already used with a different payload",
                       code="event_id_conflict", fields={"event_id": ["already used"]})
    return True
