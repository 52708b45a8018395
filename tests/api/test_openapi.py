"""The OpenAPI 3 document at /openapi.json and the docs UI at /docs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

EVENT_SCHEMAS = {"BusEvent": "bus", "MetroEvent": "metro", "StepsEvent": "steps"}
PATHS = ["/v1/events", "/v1/events/{event_id}", "/v1/me/account", "/v1/me/ledger",
         "/v1/methodologies", "/healthz", "/readyz"]
USER_OPERATIONS = [("/v1/events", "post"), ("/v1/events/{event_id}", "get"),
                   ("/v1/me/account", "get"), ("/v1/me/ledger", "get")]


@pytest.fixture
def spec(client: FlaskClient) -> dict[str, Any]:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    body: dict[str, Any] = r.json
    return body


def resolve(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = spec
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_openapi_json_is_openapi_3(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.")
    assert spec["info"]["version"] == "v1"
    assert spec["info"]["title"]


@pytest.mark.parametrize("path", PATHS)
def test_openapi_lists_path(spec: dict[str, Any], path: str) -> None:
    assert path in spec["paths"], sorted(spec["paths"])


def test_openapi_paths_use_openapi_templates_not_flask_converters(spec: dict[str, Any]
                                                                  ) -> None:
    assert not [p for p in spec["paths"] if "<" in p or ">" in p]


def test_post_events_request_body_is_one_of_the_three_event_schemas(spec: dict[str, Any]
                                                                   ) -> None:
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]
    assert body["required"] is True
    one_of = body["content"]["application/json"]["schema"]["oneOf"]
    # More modes may be added; these three must be there.
    assert {f"#/components/schemas/{name}" for name in EVENT_SCHEMAS} <= {
        item["$ref"] for item in one_of}
    for item in one_of:
        schema = resolve(spec, item["$ref"])
        assert schema["type"] == "object"
        assert schema["properties"]


@pytest.mark.parametrize(("name", "mode"), sorted(EVENT_SCHEMAS.items()))
def test_event_component_schema_pins_its_mode_and_requires_the_ids(
        spec: dict[str, Any], name: str, mode: str) -> None:
    """Each oneOf branch is told apart by ``mode``; unknown fields are refused."""
    schema = spec["components"]["schemas"][name]
    assert schema["properties"]["mode"]["enum"] == [mode]
    assert {"event_id", "mode", "city"} <= set(schema["required"])
    assert schema.get("additionalProperties") is False
    assert schema["properties"]["event_id"]["type"] == "string"


def test_metro_event_schema_documents_its_fields(spec: dict[str, Any]) -> None:
    metro = spec["components"]["schemas"]["MetroEvent"]
    assert {"entry_station_id", "exit_station_id", "started_at", "ended_at"} <= set(
        metro["required"])
    assert metro["properties"]["started_at"]["format"] == "date-time"


def test_steps_event_schema_documents_steps_as_a_bounded_integer(spec: dict[str, Any]
                                                                 ) -> None:
    steps = spec["components"]["schemas"]["StepsEvent"]["properties"]["steps"]
    assert steps["type"] == "integer"
    assert steps["minimum"] == 0


def test_every_ref_in_the_document_resolves(spec: dict[str, Any]) -> None:
    found = list(refs(spec))
    assert found
    for ref in found:
        resolve(spec, ref)


def test_bearer_auth_security_scheme_is_declared(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


@pytest.mark.parametrize(("path", "method"), USER_OPERATIONS)
def test_user_operations_require_bearer_auth(spec: dict[str, Any], path: str,
                                             method: str) -> None:
    assert {"bearerAuth": []} in spec["paths"][path][method]["security"]


@pytest.mark.parametrize("path", ["/v1/methodologies", "/healthz", "/readyz"])
def test_public_operations_do_not_require_auth(spec: dict[str, Any], path: str) -> None:
    assert not spec["paths"][path]["get"].get("security")


def test_event_id_path_parameter_is_documented(spec: dict[str, Any]) -> None:
    item = spec["paths"]["/v1/events/{event_id}"]
    params = item.get("parameters", []) + item["get"].get("parameters", [])
    assert {"in": "path", "name": "event_id"} in [
        {"in": p["in"], "name": p["name"]} for p in params]


def test_ledger_query_parameters_are_documented(spec: dict[str, Any]) -> None:
    params = {p["name"]: p for p in spec["paths"]["/v1/me/ledger"]["get"]["parameters"]}
    assert params["limit"]["in"] == "query"
    assert params["limit"]["schema"]["minimum"] == 1
    assert params["cursor"]["in"] == "query"


def test_documented_error_response_matches_the_error_shape(spec: dict[str, Any]) -> None:
    default = spec["paths"]["/v1/events"]["post"]["responses"]["default"]
    if "$ref" in default:
        default = resolve(spec, default["$ref"])
    schema = default["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = resolve(spec, schema["$ref"])
    error = schema["properties"]["error"]
    if "$ref" in error:
        error = resolve(spec, error["$ref"])
    assert {"code", "message", "fields"} <= set(error["properties"])
    assert error["properties"]["code"]["type"] == "string"


def test_docs_ui_is_served_as_html(client: FlaskClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200
    assert r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    assert "swagger-ui" in page
    assert "/openapi.json" in page
