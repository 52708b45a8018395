"""The 409 of a reused event_id tells the client what went wrong in words
(carbon_credits/ingest/idempotency.py): the error contract's ``message`` is a sentence, not
null or a code. Its code and field are checked in tests/unit/test_idempotency.py."""

from __future__ import annotations

import pytest

from carbon_credits.errors import Conflict
from carbon_credits.ingest.idempotency import is_replay, payload_hash


def test_a_reused_event_id_is_a_409_whose_message_says_the_payload_differs() -> None:
    with pytest.raises(Conflict) as caught:
        is_replay(payload_hash({"steps": 10}), payload_hash({"steps": 11}))
    assert caught.value.message == "event_id was already used with a different payload"
    assert str(caught.value) == caught.value.message
