"""What a post told to retry later hears (carbon_credits/ingest/retry.py): when conflicts
outlast every attempt, a 503 whose Retry-After is the service's number of seconds and
whose message says what to do. Written for survivors of mutation testing
(docs/MUTATION.md): tests/unit/test_retry.py checked the header was there, not its value."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from carbon_credits.errors import RETRY_AFTER_S, Unavailable
from carbon_credits.ingest.retry import ATTEMPTS, retrying_conflicts


def test_conflicts_past_the_last_attempt_say_when_and_how_to_retry() -> None:
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise IntegrityError("INSERT INTO events", {}, Exception("duplicate key"))

    with pytest.raises(Unavailable) as caught:
        retrying_conflicts(attempt)
    assert len(calls) == ATTEMPTS
    assert caught.value.status == 503
    assert caught.value.headers == {"Retry-After": str(RETRY_AFTER_S)}
    assert int(caught.value.headers["Retry-After"]) > 0
    assert caught.value.message == ("the events met concurrent writes of the same ids; "
                                    "retry with the same event_id")
