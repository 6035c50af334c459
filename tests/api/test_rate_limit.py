"""The per-token rate limit (access.rate_limit_per_second): a 429 with Retry-After that
names the settings; each token its own bucket; workers and health never limited."""

from __future__ import annotations

from tests.api.conftest import TASKS, Server

SLOW = {"access": {"rate_limit_per_second": 0.01, "rate_limit_burst": 3}}


def test_a_token_over_its_rate_gets_a_429_with_retry_after(server: Server) -> None:
    server.config = SLOW
    server.tokens = ["alice-token", "bob-token"]
    with server.run() as api:
        for _ in range(3):
            assert api.get(TASKS).status_code == 200
        r = api.get(TASKS)
        assert r.status_code == 429, r.text
        assert 1 <= int(r.headers["retry-after"]) <= 100  # one token back every 100 s
        detail = r.json()["detail"]
        assert "0.01 requests a second" in detail and "bursts of 3" in detail, detail
        assert "access.rate_limit_per_second" in detail and "retry in" in detail, detail
        other = api.get(TASKS, headers={"Authorization": "Bearer bob-token"})
        assert other.status_code == 200, other.text


def test_requests_without_a_token_are_limited_by_address(server: Server) -> None:
    server.config = SLOW
    with server.run() as api:
        anonymous = {"Authorization": ""}
        for _ in range(3):
            assert api.get(TASKS, headers=anonymous).status_code == 401
        assert api.get(TASKS, headers=anonymous).status_code == 429
        assert api.get(TASKS).status_code == 200  # the token's own bucket


def test_health_and_the_worker_routes_are_never_limited(server: Server) -> None:
    server.config = {"access": {"rate_limit_per_second": 0.01, "rate_limit_burst": 1}}
    with server.run() as api:
        for _ in range(5):
            assert api.get("/api/v1/health").status_code == 200
            r = api.get("/api/v1/worker/tasks/nope", headers={"Authorization": "Bearer x"})
            assert r.status_code != 429, r.text
        assert api.get(TASKS).status_code == 200
        assert api.get(TASKS).status_code == 429


def test_no_limit_by_default_and_the_schema_documents_the_429_only_when_on(
    server: Server,
) -> None:
    with server.run() as api:
        assert all(api.get(TASKS).status_code == 200 for _ in range(150))
        responses = api.get("/openapi.json").json()["paths"]["/ga4gh/tes/v1/tasks"]["get"]
        assert "429" not in responses["responses"]
    server.config = SLOW
    with server.run() as api:
        schema = api.get("/openapi.json").json()["paths"]
        assert "429" in schema["/ga4gh/tes/v1/tasks"]["get"]["responses"]
        assert "429" not in schema["/api/v1/health"]["get"]["responses"]
