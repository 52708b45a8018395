"""A chunked body of exactly MAX_CONTENT_LENGTH bytes is read like a sized one.

Found in review: body_bytes (api/requests.py) probed past the limit through werkzeug's
LimitedStream, which raises on any further read whether or not more data follows, so such
a body was 413 while the same body with a Content-Length was accepted."""

from __future__ import annotations

import io
import json

from flask import Flask

from tests import factories


def _body_of_exactly(limit: int) -> bytes:
    event = factories.metro()
    raw = json.dumps(event).encode()
    pad = limit - len(raw)
    return raw[:-1] + b" " * pad + raw[-1:]  # still valid JSON, exactly ``limit`` bytes


def test_chunked_body_of_exactly_the_limit_is_treated_like_a_sized_one(
        app: Flask, token, user_id: str) -> None:
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = _body_of_exactly(limit)
    assert len(body) == limit
    auth = {"Authorization": f"Bearer {token(user_id)}", "Content-Type": "application/json"}
    client = app.test_client()
    sized = client.post("/v1/events", data=body, headers=auth)
    chunked = client.post("/v1/events", input_stream=io.BytesIO(body),
                          headers={**auth, "Transfer-Encoding": "chunked"},
                          environ_overrides={"wsgi.input_terminated": True})
    assert (sized.status_code, chunked.status_code) == (201, 200)
