"""Places where /openapi.json does not describe what the app does, found by the fuzzer.

Each was first pinned by a strict xfail naming the bug and its fix, and stays as the
regression test once fixed (with any allowance in test_schemathesis.py's
KNOWN_NONCONFORMANCE dropped).
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient


@pytest.fixture
def spec(client: FlaskClient) -> dict[str, Any]:
    body: dict[str, Any] = client.get("/openapi.json").json
    return body


def bounds(node: Any, where: str = "#") -> list[tuple[str, Any]]:
    """Every minimum/maximum in the document with where it is."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                found.append((f"{where}/{key}", value))
            else:
                found.extend(bounds(value, f"{where}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(bounds(value, f"{where}/{i}"))
    return found


@pytest.mark.parametrize("path", ["/v1/reports/reduction", "/v1/reports/verification"])
def test_reports_document_their_default_json_200(spec: dict[str, Any], path: str) -> None:
    """BUG-1, fixed: the 200 of the reports was documented as text/csv only (an explicit
    @blp.doc content replaced the JSON one), though JSON is the default answer."""
    content = spec["paths"][path]["get"]["responses"]["200"]["content"]
    assert "text/csv" in content
    assert "application/json" in content
    assert "$ref" in content["application/json"]["schema"]


def test_every_numeric_bound_in_the_document_is_a_number(spec: dict[str, Any]) -> None:
    """BUG-2, fixed: a Decimal field's bound was written as the string "0"."""
    wrong = [(where, value) for where, value in bounds(spec)
             if isinstance(value, bool) or not isinstance(value, int | float)]
    assert wrong == []


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/batch"])
def test_the_device_header_is_documented_where_it_is_read(spec: dict[str, Any],
                                                          path: str) -> None:
    """Clients learn from the document that X-Device-Id exists and what shape it takes."""
    params = {p["name"]: p for p in spec["paths"][path]["post"].get("parameters", [])}
    header = params["X-Device-Id"]
    assert header["in"] == "header" and header["required"] is False
    assert header["schema"]["pattern"].startswith("^")
