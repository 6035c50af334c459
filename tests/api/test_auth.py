"""Bearer tokens: every route but health needs one when the server has tokens."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import BATCHES, TASKS, Server, create

ROUTES = [
    ("GET", TASKS),
    ("POST", TASKS),
    ("GET", f"{TASKS}/x"),
    ("POST", f"{TASKS}/x:cancel"),
    ("GET", "/ga4gh/tes/v1/service-info"),
    ("GET", "/v1/tasks/service-info"),
    ("GET", "/v1/tasks"),
    ("GET", BATCHES),
    ("GET", "/api/v1/tasks/x"),
    ("GET", "/api/v1/tasks/x/wait"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_or_a_wrong_token_is_a_401_that_says_what_to_send(
    api: httpx.Client, method: str, path: str
) -> None:
    anonymous = api.request(method, path, headers={"Authorization": ""})
    assert anonymous.status_code == 401, anonymous.text
    assert "Authorization: Bearer TOKEN" in anonymous.json()["detail"]
    wrong = api.request(method, path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "the bearer token is not valid for this server"}
    basic = api.request(method, path, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert basic.status_code == 401
    assert {r.headers.get("www-authenticate") for r in (anonymous, wrong, basic)} == {"Bearer"}


def test_health_needs_no_token(api: httpx.Client) -> None:
    r = api.get("/api/v1/health", headers={"Authorization": ""})
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_any_of_several_tokens_is_accepted(server: Server) -> None:
    server.tokens = ["first", "second"]
    with server.run() as api:
        create(api)
        r = api.get(TASKS, headers={"Authorization": "Bearer second"})
        assert r.status_code == 200 and len(r.json()["tasks"]) == 1


def test_a_server_without_tokens_is_open_and_its_schema_says_so(server: Server) -> None:
    server.tokens = []
    with server.run() as api:
        assert api.get(TASKS).status_code == 200
        create(api)
        schema = api.get("/openapi.json").json()
        assert "401" not in schema["paths"]["/ga4gh/tes/v1/tasks"]["get"]["responses"]


def test_the_schema_documents_the_real_error_responses(api: httpx.Client) -> None:
    schema = api.get("/openapi.json", headers={"Authorization": ""})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    create_task = paths["/ga4gh/tes/v1/tasks"]["post"]["responses"]
    assert {"200", "400", "401", "413"} <= set(create_task) and "422" not in create_task
    assert "404" in paths["/ga4gh/tes/v1/tasks/{id}"]["get"]["responses"]
    assert "401" not in paths["/api/v1/health"]["get"]["responses"]
    assert "403" in create_task and "403" in paths["/api/v1/events"]["get"]["responses"]
    assert "403" not in paths["/ga4gh/tes/v1/tasks/{id}"]["get"]["responses"]
    assert "/v1/tasks" not in paths  # the older prefix is served, not published
    components = schema.json()["components"]["schemas"]
    assert "ErrorResponse" in components and "HTTPValidationError" not in components
