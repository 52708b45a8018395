"""The explanation built on read (ledger/explain.py) equals the one answered at write.

Events of every mode and outcome are posted (singly and in batches), then read back
(GET's service, the review queue, reversals, replays): each explanation built from the
stored row must equal, as JSON, the one the first post answered with.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbon_credits.antifraud import reviews
from carbon_credits.errors import ServiceError
from carbon_credits.ingest import events
from carbon_credits.ledger import reversals
from carbon_credits.ledger.explain import INPUT_COLUMNS, TIME_INPUTS
from carbon_credits.runtime import Runtime
from carbon_credits.schemas import load_event
from carbon_credits.tokens import Principal
from methodology import METHODOLOGIES
from tests import factories

STATIONS = ["luohu", "guomao", "laojie", "huaxin", "shaoniangong", "fumin", "chegongmiao"]
BUS_STOPS = ["b-luohu", "b-guomao", "b-dajuyuan", "b-kexueguan", "b-huaqianglu", "b-gangxia"]
ADMIN = Principal("admin-explain", "admin", None)


def _start(minutes_ago: int) -> Any:
    return factories.NOW - timedelta(minutes=minutes_ago)


ago = st.integers(min_value=30, max_value=2 * 24 * 60)
metro = st.builds(
    lambda m, d, a, b: factories.metro(
        entry_station_id=a, exit_station_id=b, start=_start(m),
        ended_at=(_start(m) + timedelta(minutes=d)).isoformat()),
    ago, st.integers(min_value=1, max_value=60), st.sampled_from(STATIONS),
    st.sampled_from(STATIONS))
bus = st.builds(
    lambda m, board, alight, metres, d: factories.bus(
        board_stop_id=board, start=_start(m),
        **({} if alight is None else {"alight_stop_id": alight}),
        **({} if metres is None else {"distance_m": metres}),
        **({} if d is None else {"ended_at": (_start(m) + timedelta(minutes=d)).isoformat()})),
    ago, st.sampled_from(BUS_STOPS), st.none() | st.sampled_from(BUS_STOPS),
    st.none() | st.integers(min_value=0, max_value=20_000),
    st.none() | st.integers(min_value=1, max_value=60))
bikeshare = st.builds(
    lambda m, metres, d: {"event_id": "", "mode": "bikeshare", "city": "shenzhen",
                          "distance_m": metres, "started_at": _start(m).isoformat(),
                          "ended_at": (_start(m) + timedelta(minutes=d)).isoformat()},
    ago, st.integers(min_value=0, max_value=30_000), st.integers(min_value=1, max_value=90))
steps = st.builds(
    lambda days, count: factories.steps(
        count, date=(factories.NOW - timedelta(days=days)).date().isoformat()),
    st.integers(min_value=0, max_value=2), st.integers(min_value=0, max_value=40_000))


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


@st.composite
def histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    bodies = draw(st.lists(st.one_of(metro, bus, bikeshare, steps), min_size=1, max_size=14))
    for n, body in enumerate(bodies):
        body["event_id"] = f"x{n}"
    return bodies


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(bodies=histories(), batched=st.booleans(), frozen=st.booleans(),
       reverse=st.integers(min_value=0, max_value=13))
def test_the_explanation_built_on_read_is_the_one_answered(
        rt: Runtime, bodies: list[dict[str, Any]], batched: bool, frozen: bool,
        reverse: int) -> None:
    user = Principal(f"x-{uuid.uuid4().hex[:12]}", "user", "shenzhen")
    if frozen:  # every event held: the review queue and approvals below
        events.ingest(rt, user, load_event(factories.metro(event_id="first")))
        reviews.set_frozen(rt, ADMIN, user.sub, True, "test")
    answered: dict[str, dict[str, Any]] = {}
    if batched:
        for item in events.ingest_batch(rt, user, bodies):
            if item["result"] is not None:
                answered[item["result"]["event_id"]] = item["result"]
    else:
        for body in bodies:
            try:
                answered[body["event_id"]] = events.ingest(rt, user, load_event(body)).event
            except ServiceError:
                pass  # refused (unquantifiable): nothing stored
    for event_id, first in answered.items():
        assert _json(events.get_event(rt, user, event_id)) == _json(first), event_id
        replay = events.ingest(rt, user, load_event(
            next(b for b in bodies if b["event_id"] == event_id)))
        assert not replay.created and _json(replay.event) == _json(first)
    statuses = {a["status"] for a in answered.values()}
    if frozen:
        reviews.set_frozen(rt, ADMIN, user.sub, False, "test")
        queued = [q for q in reviews.queue(rt, 1000, None) if q["user_id"] == user.sub]
        for q in queued:
            shown = {k: v for k, v in q.items() if k not in ("id", "user_id")}
            assert _json(shown) == _json(answered[q["event_id"]])
        for q in queued[:2]:
            decided = reviews.decide(rt, ADMIN, user.sub, q["event_id"], True, "ok")
            assert decided["status"] in ("credited", "capped")
            assert "credited_ug" in decided["explanation"]
            assert _json(events.get_event(rt, user, q["event_id"])) == _json(decided)
    if answered:
        event_id = sorted(answered)[reverse % len(answered)]
        before = events.get_event(rt, user, event_id)
        shown = reversals.reverse_event(rt, ADMIN, user.sub, event_id, "test")
        assert shown["status"] == "reversed"
        assert _json(shown["explanation"]) == _json(before["explanation"])
        assert _json(events.get_event(rt, user, event_id)) == _json(shown)
    assert statuses <= {"credited", "capped", "held", "rejected"}


def test_every_declared_input_has_a_column() -> None:
    """A mode whose input had no column would lose it (and its explanation) on write."""
    for method in METHODOLOGIES.values():
        for field in method.inputs:
            assert field.name in INPUT_COLUMNS or field.name in TIME_INPUTS, field.name
        columns = [INPUT_COLUMNS[f.name] for f in method.inputs if f.name in INPUT_COLUMNS]
        assert len(columns) == len(set(columns)), method.mode


def test_every_outcome_is_covered(rt: Runtime) -> None:
    """Capped, held, rejected, tap-on-only and client-distance events, read back."""
    user = Principal(f"y-{uuid.uuid4().hex[:12]}", "user", "shenzhen")
    bodies = [
        factories.steps(20_000, event_id="capped"),
        factories.metro(event_id="rejected", start=factories.today_at(8, 5)),
        factories.metro(event_id="ok", start=factories.today_at(8)),
        factories.metro(event_id="held", start=factories.today_at(10), ended_at=(
            factories.today_at(10) + timedelta(minutes=2)).isoformat()),
        factories.bus(event_id="tap-on", start=factories.today_at(12), alight_stop_id=None),
        factories.bus(event_id="client", start=factories.today_at(14), distance_m=900),
        {"event_id": "bike", "mode": "bikeshare", "city": "shenzhen", "distance_m": 3000,
         "started_at": factories.today_at(16).isoformat(),
         "ended_at": (factories.today_at(16) + timedelta(minutes=15)).isoformat()},
    ]
    bodies[4].pop("alight_stop_id")
    answered = {b["event_id"]: events.ingest(rt, user, load_event(b)).event for b in bodies}
    assert answered["capped"]["status"] == "capped"
    assert answered["held"]["status"] == "held"
    assert {answered["rejected"]["status"], answered["ok"]["status"]} == {"credited",
                                                                         "rejected"}
    assert answered["tap-on"]["explanation"]["inputs"]["alight_stop_id"] is None
    assert answered["client"]["explanation"]["distance_source"].startswith("reported")
    for event_id, first in answered.items():
        assert _json(events.get_event(rt, user, event_id)) == _json(first), event_id
