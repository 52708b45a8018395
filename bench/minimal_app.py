"""The issue's calibration baseline: the least a durable ingest handler can do.

Verify a JWT (HS256, exp/iss/aud), parse the JSON body, and write event + ledger entry +
balance in ONE SQL statement with commit on (a single durable round trip). No validation,
no rate limit, no fraud rules, no methodology: the gap between this and the real service is
what all of those cost.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jwt
import psycopg
from flask import Flask, Response, request

SECRET = os.environ["JWT_SECRET"]
DSN = os.environ["MINIMAL_DSN"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS min_events (id bigserial PRIMARY KEY, user_id text NOT NULL,
    event_id text NOT NULL, payload jsonb NOT NULL, grams bigint NOT NULL,
    UNIQUE (user_id, event_id));
CREATE TABLE IF NOT EXISTS min_ledger (id bigserial PRIMARY KEY, event_pk bigint NOT NULL,
    user_id text NOT NULL, points bigint NOT NULL);
CREATE TABLE IF NOT EXISTS min_balances (user_id text PRIMARY KEY, balance bigint NOT NULL);
"""

WRITE = """
WITH e AS (
    INSERT INTO min_events (user_id, event_id, payload, grams) VALUES (%s, %s, %s, 376)
    ON CONFLICT (user_id, event_id) DO NOTHING RETURNING id, user_id, grams),
l AS (
    INSERT INTO min_ledger (event_pk, user_id, points) SELECT id, user_id, grams FROM e
    RETURNING user_id, points)
INSERT INTO min_balances (user_id, balance) SELECT user_id, points FROM l
ON CONFLICT (user_id) DO UPDATE SET balance = min_balances.balance + excluded.balance
"""

app = Flask(__name__)


def _conn() -> psycopg.Connection[Any]:
    conn = getattr(app, "_conn", None)
    if conn is None or conn.closed:
        conn = psycopg.connect(DSN, autocommit=True)
        app._conn = conn  # type: ignore[attr-defined]  # one connection per worker process
    return conn


@app.get("/healthz")
def healthz() -> Response:
    return Response('{"status":"ok"}', mimetype="application/json")


@app.post("/v1/events")
def post_event() -> tuple[str, int]:
    token = request.headers.get("Authorization", "")[7:]
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="carbon-credits-api",
                            issuer="carbon-credits", options={"require": ["exp", "sub"]})
    except jwt.InvalidTokenError:
        return '{"error":"unauthorized"}', 401
    body = request.get_json()
    _conn().execute(WRITE, (claims["sub"], body["event_id"], json.dumps(body)))
    return '{"status":"credited"}', 201


with psycopg.connect(DSN) as _setup, _setup.transaction():
    # Every worker runs this as it starts: one at a time, or two CREATE ... IF NOT EXISTS
    # can both find the name free and one fails on pg_class's unique index.
    _setup.execute("SELECT pg_advisory_xact_lock(8213)")
    _setup.execute(SCHEMA)
