"""The OpenAPI document's links: valid OpenAPI 3.1, and each one leads somewhere real.

A link that names a missing operation, parameter or response field would make every client
generator (and schemathesis' stateful phase) follow it into nothing.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from tests.api.conftest import BATCHES, TASKS
from toolship.api.links import Resource, add_links

BODY = "$response.body#"


def _operations(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {op["operationId"]: op for item in schema["paths"].values() for op in item.values()}


def _field(schema: dict[str, Any], node: dict[str, Any], pointer: str) -> dict[str, Any]:
    """The JSON schema of the field at ``pointer`` in a body ``node`` describes."""
    for part in pointer.strip("/").split("/"):
        if "$ref" in node:
            node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
        node = node["items"] if part.isdigit() else node["properties"][part]
    return node


def test_the_document_is_valid_openapi_and_every_link_leads_somewhere(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    OpenAPIV31SpecValidator(schema).validate()
    operations = _operations(schema)
    count = 0
    for source, op in operations.items():
        for status, response in op["responses"].items():
            body = response.get("content", {}).get("application/json", {}).get("schema", {})
            for name, link in response.get("links", {}).items():
                target = operations[link["operationId"]]
                names = {p["name"] for p in target.get("parameters", [])}
                for param, expression in link["parameters"].items():
                    assert param in names, f"{source} {status} -> {name}: no {param!r}"
                    assert expression.startswith(BODY), expression
                    # KeyError here: the source's answer has no such field.
                    assert _field(schema, body, expression.removeprefix(BODY))["type"] == "string"
                count += 1
    assert count > 30


def test_a_created_task_links_to_reading_and_canceling_it(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    links = paths[TASKS]["post"]["responses"]["200"]["links"]
    assert links["GetTask"] == {"operationId": "GetTask", "parameters": {"id": f"{BODY}/id"}}
    assert links["CancelTask"]["parameters"] == {"id": f"{BODY}/id"}
    batch = paths[BATCHES]["post"]["responses"]["200"]["links"]
    assert batch["GetBatch"]["parameters"] == {"id": f"{BODY}/id"}
    assert batch["GetTask"]["parameters"] == {"id": f"{BODY}/task_ids/0"}


def test_a_stale_link_table_refuses_to_build_the_document(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    made = {("CreateTask", "200"): {"id": "/id"}}
    with pytest.raises(ValueError, match="no operation 'Gone'"):
        add_links(schema, {"x": Resource(made_by=made, used_by={"Gone": {}})})
    with pytest.raises(ValueError, match="GetTask: it has no parameter 'x'"):
        add_links(schema, {"x": Resource(made_by=made, used_by={"GetTask": {"id": "x"}})})
