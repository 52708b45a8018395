"""Schema-driven fuzzing of every operation in /openapi.json (schemathesis), as each role.

For each operation the OpenAPI document lists, schemathesis generates requests from the
document itself: valid ones (positive mode) and invalid ones (negative mode: wrong types,
missing or extra fields, out-of-range values, malformed parameters). Each is sent with a
valid token of one role (user, partner, admin, merchant; and once more with no token at
all) to an app on a database of its own. Every response must be

* not a server error (no 5xx at all: this app on a healthy database owes no 503), and
* conforming to the document: a documented status, a documented Content-Type, a body valid
  against the documented schema, documented headers valid.

A second test fuzzes the ingest path in depth: schema-valid events are rarely *meaningful*
(random station ids are unknown, random times are outside the window), so it draws events
from the demo network with random times, offsets, durations and replays, and checks every
response against the document and the ledger afterwards.

Bounded for CI by FUZZ_EXAMPLES (default 20 generated requests per operation, role and
mode: about 3,500 requests in 20-30 s). A longer run: ``FUZZ_EXAMPLES=500 .venv/bin/python
-m pytest tests/fuzz`` (RELIABILITY.md).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.serialization import serialize_binary

from carbon_credits.config import Config
from carbon_credits.runtime import Runtime
from tests import factories
from tests.conftest import app_on_own_database
from tests.faults.figures import record
from tests.faults.ledger import check_accounts
from tests.signing import Key, sign

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
"""Generated requests per operation, role and mode (hypothesis max_examples)."""
EVENT_EXAMPLES = int(os.environ.get("FUZZ_EVENT_EXAMPLES", str(EXAMPLES * 10)))
"""Sequences drawn by the ingest fuzzer."""

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]

ROLE_MODES = [("user", GenerationMode.POSITIVE), ("user", GenerationMode.NEGATIVE),
              ("partner", GenerationMode.POSITIVE), ("partner", GenerationMode.NEGATIVE),
              ("admin", GenerationMode.POSITIVE), ("admin", GenerationMode.NEGATIVE),
              ("merchant", GenerationMode.POSITIVE), ("merchant", GenerationMode.NEGATIVE),
              (None, GenerationMode.POSITIVE)]
"""(role, generation mode); None sends no token (every protected operation must say 401)."""

KNOWN_NONCONFORMANCE: set[tuple[str, str]] = set()
"""(operation label, failure class) of documented bugs outside this suite's reach, each
pinned by a strict xfail in test_spec_bugs.py (which fails, XPASS, once it is fixed: then
drop the entry here). Empty: BUG-1 (the reports' JSON 200 undocumented) was fixed."""

SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))

STATS: Counter[str] = Counter()
"""Status codes and counts of the operation fuzzing, for the figures."""
EVENT_STATS: Counter[str] = Counter()
"""The same for the ingest fuzzing."""


# ---------------------------------------------------------------- the app and its schema

@pytest.fixture(scope="module")
def fuzz_app(make_config: Callable[..., Config],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """An app on a database of its own: fuzzed admin calls (freezes, factor versions with
    random future dates) must not leak into the rest of the suite."""
    with app_on_own_database(make_config, tmp_path_factory.mktemp("fuzz")) as application:
        yield application
    record("fuzz: schemathesis (all operations x roles x modes)",
           examples_per_operation=EXAMPLES, requests=STATS["requests"],
           server_errors=STATS["5xx"], nonconforming=STATS["nonconforming"],
           known_nonconforming=STATS["known"], unsendable=STATS["unsendable"],
           statuses={k: v for k, v in sorted(STATS.items()) if k.isdigit()})


@schemathesis.serializer("application/zip")
def _zip(_ctx: Any, value: Any) -> bytes:
    """POST /v1/admin/networks/{city} takes a GTFS zip: send the generated bytes as they are."""
    return serialize_binary(value)


@pytest.fixture(scope="module")
def api_schema(fuzz_app: Flask) -> schemathesis.BaseSchema:
    raw = fuzz_app.test_client().get("/openapi.json").json
    assert isinstance(raw, dict)
    # = schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app), with the workaround above
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = fuzz_app
    schema.location = "/openapi.json"
    return schema


def token_for(app: Flask, role: str | None) -> str | None:
    if role is None:
        return None
    rt: Runtime = app.extensions["carbon_credits"]
    # A user (or merchant) nobody else fuzzes, per role and run; partners see Shenzhen.
    return rt.codec.encode(f"fz-{role}-{uuid.uuid4().hex[:10]}", role, "shenzhen",  # type: ignore[arg-type]
                           3600)


# ---------------------------------------------------------------- sending and judging

def send(case: Any, token: str | None, failures: list[str], label: str,
         stats: Counter[str] = STATS) -> Any:
    """Send one case with ``token``; judge the response; return it (None if unsendable)."""
    headers = dict(case.headers or {})
    headers.pop("Authorization", None)
    headers.pop("authorization", None)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    case.headers = headers
    try:
        response = case.call()
    except (ValueError, TypeError, UnicodeError):
        # A generated request the HTTP client itself refuses to build (e.g. a header value
        # with a newline): it never reaches the app.
        stats["unsendable"] += 1
        return None
    stats["requests"] += 1
    stats[str(response.status_code)] += 1
    if response.status_code >= 500:
        stats["5xx"] += 1
    try:
        case.validate_response(response, checks=CHECKS)
    except FailureGroup as group:
        judge(group.exceptions, label, failures, stats)
    except Failure as failure:
        judge((failure,), label, failures, stats)
    return response


def judge(found: tuple[Failure, ...], label: str, failures: list[str],
          stats: Counter[str]) -> None:
    for failure in found:
        if (label, type(failure).__name__) in KNOWN_NONCONFORMANCE:
            stats["known"] += 1
            continue
        stats["nonconforming"] += 1
        failures.append(f"{label}: {type(failure).__name__}: {failure.title}\n"
                        f"{str(failure.message)[:600]}")


def operations(schema: schemathesis.BaseSchema) -> list[Any]:
    found = []
    for result in schema.get_all_operations():
        found.append(result.ok())  # an operation schemathesis cannot read fails here
    return found


# ---------------------------------------------------------------- every operation

def test_the_document_lists_every_route_the_app_serves(fuzz_app: Flask,
                                                       api_schema: Any) -> None:
    """The fuzzer only reaches what the document lists: every API route must be in it."""
    documented = {op.label for op in operations(api_schema)}
    served = set()
    for rule in fuzz_app.url_map.iter_rules():
        if rule.endpoint in ("static",) or rule.rule.startswith(("/openapi.json", "/docs")):
            continue
        path = re.sub(r"<(?:[^<>]*:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                served.add(f"{method} {path}")
    assert served - documented == set(), "routes the OpenAPI document does not list"


@pytest.mark.parametrize(("role", "mode"), ROLE_MODES,
                         ids=[f"{r or 'anonymous'}-{m.value}" for r, m in ROLE_MODES])
def test_every_operation_answers_without_5xx_and_as_documented(
        fuzz_app: Flask, api_schema: Any, role: str | None, mode: GenerationMode) -> None:
    token = token_for(fuzz_app, role)
    failures: list[str] = []
    for operation in operations(api_schema):
        label = operation.label

        @SETTINGS
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            send(case, token, failures, label)  # noqa: B023 - run() is called right here

        try:
            run()
        except Unsatisfiable:
            # Negative mode on an operation without parameters or body: nothing to break.
            assert mode is GenerationMode.NEGATIVE, label
    distinct = sorted(set(failures))
    assert not distinct, f"{len(failures)} failures, {len(distinct)} distinct:\n\n" + \
        "\n\n".join(distinct[:20])


# ---------------------------------------------------------------- signed provider routes

@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=lambda m: m.value)
def test_signed_provider_operations_answer_without_5xx(fuzz_app: Flask, api_schema: Any,
                                                        mode: GenerationMode) -> None:
    """The provider routes with a valid signature on every generated request, so the
    fuzzed bodies reach the handlers (the operation fuzz above sends them unsigned, where
    all are 401): never a 5xx, every refusal in the one error shape. The signature covers
    the exact bytes sent, so these go through the test client, not schemathesis' sender."""
    client = fuzz_app.test_client()
    admin = {"Authorization": f"Bearer {token_for(fuzz_app, 'admin')}"}
    provider_id = f"fz-{uuid.uuid4().hex[:10]}"
    assert client.post("/v1/admin/providers", headers=admin, json={
        "id": provider_id, "name": "Fuzz", "city": "shenzhen",
        "modes": ["metro"]}).status_code == 201
    made = client.post(f"/v1/admin/providers/{provider_id}/keys", headers=admin,
                       json={"algorithm": "hmac-sha256"}).json
    key = Key.hmac(made["key_id"], made["secret"])
    signed_ops = [op for op in operations(api_schema) if op.path.startswith("/v1/provider/")]
    assert signed_ops
    failures: list[str] = []
    statuses: Counter[str] = Counter()
    for operation in signed_ops:

        @SETTINGS
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            body = (b"" if case.body is NOT_SET else case.body if isinstance(case.body, bytes)
                    else json.dumps(case.body).encode())
            path = case.formatted_path
            r = client.open(path, method=case.method, data=body,
                            headers=sign(key, case.method, path, body))
            statuses[str(r.status_code)] += 1
            if r.status_code >= 500 or (r.status_code >= 400 and not (
                    isinstance(r.json, dict) and set(r.json) == {"error"})):
                failures.append(f"{case.method} {path} {body[:200]!r}: {r.status_code} "
                                f"{r.get_data()[:300]!r}")

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label
    record(f"fuzz: signed provider routes ({mode.value})",
           statuses=dict(sorted(statuses.items())))
    assert not failures, "\n".join(failures[:20])


# ---------------------------------------------------------------- the ingest path in depth

METRO = ["luohu", "guomao", "laojie", "dajuyuan", "kexueguan", "huaqianglu", "gangxia",
         "huizhanzhongxin", "gouwugongyuan", "xiangmihu", "chegongmiao", "hongling",
         "tongxinling", "huaxin", "lianhuacun", "shaoniangong", "futiankouan", "fumin",
         "shiminzhongxin", "lianhuabei", "shangmeilin"]
BUS = {"bus-1": ["b-luohu", "b-guomao", "b-dajuyuan", "b-kexueguan", "b-huaqianglu",
                 "b-gangxia"],
       "bus-10": ["b-futiankouan", "b-fumin", "b-huizhan", "b-shimin", "b-shaoniangong"]}
OFFSETS = ["+08:00", "+00:00", "-05:00", "+05:45", "+14:00"]
UNKNOWN = ["atlantis", "b-nowhere", "metro-1", "LUOHU", "luohu-"]


def an_instant() -> st.SearchStrategy[datetime]:
    """Mostly the last two days, sometimes beyond the backfill window or in the future."""
    minutes = st.one_of(st.integers(-2 * 24 * 60, 0), st.integers(-40 * 24 * 60, 30))
    return minutes.map(lambda m: factories.NOW + timedelta(minutes=m))


def iso(instant: datetime, offset: str) -> str:
    """``instant`` written in the UTC offset "+HH:MM" / "-HH:MM"."""
    sign = 1 if offset[0] == "+" else -1
    hours, _, minutes = offset[1:].partition(":")
    tz = timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))
    return instant.astimezone(tz).isoformat()


@st.composite
def an_event(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from(["metro", "bus", "steps"]))
    event_id = f"fz-{uuid.uuid4().hex[:16]}"
    if mode == "steps":
        day = factories.NOW.date() + timedelta(days=draw(st.integers(-35, 1)))
        return {"event_id": event_id, "mode": "steps", "city": "shenzhen",
                "date": day.isoformat(),
                "steps": draw(st.one_of(st.integers(0, 30_000), st.integers(0, 1_000_000)))}
    start = draw(an_instant())
    minutes = draw(st.one_of(st.integers(3, 90), st.integers(-10, 600)))
    end = start + timedelta(minutes=minutes, seconds=draw(st.integers(0, 59)))
    offset = draw(st.sampled_from(OFFSETS))
    if mode == "metro":
        stations = draw(st.lists(st.sampled_from(METRO + UNKNOWN[:1]), min_size=2,
                                 max_size=2))
        return {"event_id": event_id, "mode": "metro", "city": "shenzhen",
                "entry_station_id": stations[0], "exit_station_id": stations[1],
                "started_at": iso(start, offset), "ended_at": iso(end, offset)}
    line = draw(st.sampled_from([*BUS, "metro-1", "bus-999"]))
    stops = BUS.get(line, BUS["bus-1"]) + UNKNOWN[1:2]
    event: dict[str, Any] = {"event_id": event_id, "mode": "bus", "city": "shenzhen",
                             "line_id": line, "board_stop_id": draw(st.sampled_from(stops)),
                             "started_at": iso(start, offset)}
    if draw(st.booleans()):
        event["alight_stop_id"] = draw(st.sampled_from(stops))
    if draw(st.booleans()):
        event["ended_at"] = iso(end, offset)
    if draw(st.booleans()):
        event["distance_m"] = draw(st.integers(0, 30_000))
    return event


def test_fuzzed_events_conform_and_the_ledger_adds_up(fuzz_app: Flask, api_schema: Any
                                                     ) -> None:
    """Random but meaningful events from three users, with replays, conflicting replays and
    batches: every answer conforms to the document; afterwards each user's balance is the sum
    of their ledger, every event answered 2xx can be read back, and verify-ledger is clean."""
    rt: Runtime = fuzz_app.extensions["carbon_credits"]
    users = [f"fz-events-{uuid.uuid4().hex[:8]}-{i}" for i in range(3)]
    tokens = {u: rt.codec.encode(u, "user", "shenzhen", 3600) for u in users}
    post = api_schema["/v1/events"]["POST"]
    batch = api_schema["/v1/events/batch"]["POST"]
    failures: list[str] = []
    stored: dict[str, set[str]] = {u: set() for u in users}

    def call(operation: Any, user: str, body: Any) -> Any:
        case = operation.Case(body=body, media_type="application/json")
        response = send(case, tokens[user], failures, operation.label, EVENT_STATS)
        assert response is not None
        return response

    @settings(SETTINGS, max_examples=EVENT_EXAMPLES)
    @given(user=st.sampled_from(users), event=an_event(),
           then=st.sampled_from(["nothing", "replay", "conflict", "offset", "batch"]),
           more=st.lists(an_event(), max_size=8))
    def run(user: str, event: dict[str, Any], then: str, more: list[dict[str, Any]]) -> None:
        first = call(post, user, event)
        assert first.status_code < 500
        if first.status_code in (200, 201):
            stored[user].add(event["event_id"])
        if then == "replay":
            again = call(post, user, event)
            if first.status_code in (200, 201):
                assert again.status_code == 200
                assert again.json() == first.json()
        elif then == "conflict" and first.status_code in (200, 201):
            # The same event_id with another payload: 409 (or 422 if the change itself is
            # refused first, e.g. a time pushed out of the window).
            if event["mode"] == "steps":
                changed = {**event, "steps": event["steps"] + 1}
            else:
                start = datetime.fromisoformat(event["started_at"]) + timedelta(seconds=1)
                changed = {**event, "started_at": start.isoformat()}
            assert call(post, user, changed).status_code in (409, 422)
        elif then == "offset" and first.status_code in (200, 201) and event["mode"] != "steps":
            # The same instants written in another offset are the same payload: a replay.
            same = {key: iso(datetime.fromisoformat(value), "+00:00")
                    if key in ("started_at", "ended_at") else value
                    for key, value in event.items()}
            again = call(post, user, same)
            assert again.status_code == 200 and again.json() == first.json()
        elif then == "batch":
            items = [event, *more]
            response = call(batch, user, {"events": items})
            assert response.status_code == 200, response.text
            for item, result in zip(items, response.json()["results"], strict=True):
                if result["status"] in (200, 201):
                    stored[user].add(item["event_id"])

    run()

    for user in users:
        header = {"Authorization": f"Bearer {tokens[user]}"}
        client = fuzz_app.test_client()
        account = client.get("/v1/me/account", headers=header).json
        points, cursor = 0, None
        while True:
            query = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/me/ledger", headers=header, query_string=query).json
            points += sum(item["points"] for item in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert account["balance"] == points, user
        get = api_schema["/v1/events/{event_id}"]["GET"]
        for event_id in sorted(stored[user]):
            case = get.Case(path_parameters={"event_id": event_id})
            response = send(case, tokens[user], failures, get.label, EVENT_STATS)
            assert response is not None and response.status_code == 200, event_id
    problems, _ = check_accounts(rt.db, users)
    assert problems == []
    distinct = sorted(set(failures))
    assert not distinct, f"{len(failures)} failures:\n\n" + "\n\n".join(distinct[:20])
    record("fuzz: ingest sequences", sequences=EVENT_EXAMPLES,
           events_stored=sum(len(s) for s in stored.values()),
           requests=EVENT_STATS["requests"], server_errors=EVENT_STATS["5xx"],
           nonconforming=EVENT_STATS["nonconforming"],
           statuses={k: v for k, v in sorted(EVENT_STATS.items()) if k.isdigit()})

