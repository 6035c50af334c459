"""The GA4GH TRS v2.1 view of the catalog: every response checked against TRS's own schema.

The schema is the TRS OpenAPI file vendored in tests/data/trs (its README says from
where); openapi-core matches each request to its operation and validates the request
and the response (status, content type, body and the paging headers) against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from jsonschema_path import SchemaPath
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import OpenAPIV30SpecValidator

from tests.api.conftest import TOKEN, InProcess, Server, _Bridge
from toolship.api.app import create_app
from toolship.compute.fake import FakeBackend
from toolship.db.catalog import CatalogStore
from toolship.services import ServiceVersion, Signature

DATA = Path(__file__).parent.parent / "data" / "trs"
SERVICE_INFO_URL = (
    "https://raw.githubusercontent.com/ga4gh-discovery/ga4gh-service-info/v1.0.0/service-info.yaml"
)
TRS = "/ga4gh/trs/v2"
HOST = "http://toolship.test"


def _local(uri: str) -> Any:
    """The one document TRS's schema refers to, from the copy here: nothing is downloaded."""
    assert uri == SERVICE_INFO_URL, f"the TRS schema refers to {uri}, which is not vendored"
    return yaml.safe_load((DATA / "service-info.yaml").read_text())


@pytest.fixture(scope="module")
def schema() -> OpenAPI:
    spec = yaml.safe_load((DATA / "openapi.yaml").read_text())
    path = SchemaPath.from_dict(
        spec, base_uri=(DATA / "openapi.yaml").as_uri(), handlers={"https": _local}
    )
    # The schema itself is checked first, with the same offline resolver (openapi-core's own
    # check would fetch the service-info document from GitHub).
    OpenAPIV30SpecValidator(path).validate()
    return OpenAPI(path, config=Config(spec_validator_cls=None))


def _digest(n: int) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def _version(name: str, version: str, n: int, **extra: Any) -> ServiceVersion:
    repository = extra.pop("repository", f"127.0.0.1:5055/toolship/{name}")
    return ServiceVersion(
        name=name,
        version=version,
        description=extra.pop("description", f"The {name} tool"),
        repository=repository,
        digest=_digest(n),
        image=f"{repository}@{_digest(n)}",
        size=1000 + n,
        created="2026-11-01T10:00:00Z",
        registered=f"2026-11-28T00:00:{n:02d}Z",
        **extra,
    )


@dataclass
class Registry:
    api: httpx.Client
    catalog: CatalogStore
    schema: OpenAPI

    def get(
        self, path: str, params: dict[str, Any] | None = None, *, status: int = 200
    ) -> httpx.Response:
        """GET a TRS route; the request and the response must be what TRS's schema says."""
        r = self.api.get(f"{TRS}{path}", params=params)
        assert r.status_code == status, r.text
        request = MockRequest(
            HOST,
            "get",
            f"{TRS}{path}",
            args=params,
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        self.schema.validate_request(request)
        response = MockResponse(
            r.content,
            status_code=r.status_code,
            headers=dict(r.headers),
            content_type=r.headers["content-type"],
        )
        self.schema.validate_response(request, response)
        return r

    def error(self, path: str, status: int, params: dict[str, Any] | None = None) -> str:
        """A failure TRS's schema lists no response for: its body must still be TRS's Error."""
        r = self.api.get(f"{TRS}{path}", params=params)
        assert r.status_code == status, r.text
        return _trs_error(self.schema, r)


def _trs_error(schema: OpenAPI, r: httpx.Response) -> str:
    error = (schema.spec / "components" / "schemas" / "Error").read_value()
    OAS30Validator(dict(error)).validate(r.json())
    assert r.json()["code"] == r.status_code
    message: str = r.json()["message"]
    return message


@pytest.fixture
def trs(server: Server, schema: OpenAPI) -> Iterator[Registry]:
    server.config = {
        "server": {"organization": "EUDAT", "organization_url": "https://www.eudat.eu"}
    }
    fake = FakeBackend(clock=server.clock)
    app = create_app(server.settings(), tokens=[TOKEN], backend=fake.factory())
    served = InProcess(app)
    served.start()
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(transport=_Bridge(served), base_url=HOST, headers=headers) as api:
            yield Registry(api, app.state.toolship.catalog, schema)
    finally:
        served.stop()


@pytest.fixture
def catalogued(trs: Registry) -> Registry:
    """Three tools: clone (1.0 deprecated, 1.1 built and signed), nltk, wc (Docker Hub)."""
    trs.catalog.add(_version("clone", "1.0", 1), containerfile=None)
    trs.catalog.add(
        _version(
            "clone",
            "1.1",
            2,
            containerfile=True,
            signature=Signature(verified=True, key="ABCD1234", kind="gpg"),
            oci={"authors": "EUDAT GEF team <gef@eudat.eu>"},
        ),
        containerfile="FROM localhost/toolship-busybox\nLABEL eudat.gef.service.name=clone\n",
    )
    trs.catalog.deprecate("clone", "1.0")
    trs.catalog.add(_version("nltk", "0.3", 3, description="Natural language: token counts"))
    trs.catalog.add(_version("wc", "2", 4, repository="library/wc", description="Count lines"))
    return trs


def test_service_info_is_a_trs_2_1_service(trs: Registry) -> None:
    info = trs.get("/service-info").json()
    assert info["type"] == {"group": "org.ga4gh", "artifact": "trs", "version": "2.1.0"}
    assert info["organization"] == {"name": "EUDAT", "url": "https://www.eudat.eu"}


def test_one_tool_class(trs: Registry) -> None:
    assert [c["id"] for c in trs.get("/toolClasses").json()] == ["CommandLineTool"]


def test_an_empty_catalog_is_an_empty_list(trs: Registry) -> None:
    r = trs.get("/tools")
    assert r.json() == []
    assert r.headers["current_offset"] == "0" and "next_page" not in r.headers


def test_tools_carry_their_pinned_images(catalogued: Registry) -> None:
    tools = catalogued.get("/tools").json()
    assert [t["id"] for t in tools] == ["clone", "nltk", "wc"]
    clone = tools[0]
    assert clone["url"] == f"{HOST}{TRS}/tools/clone"
    assert clone["organization"] == "EUDAT"
    assert clone["toolclass"]["id"] == "CommandLineTool"
    assert clone["description"] == "The clone tool"
    new, old = clone["versions"]
    assert (new["id"], new["is_production"], old["id"], old["is_production"]) == (
        "1.1",
        True,
        "1.0",
        False,
    )
    assert new["url"] == f"{HOST}{TRS}/tools/clone/versions/1.1"
    assert (new["containerfile"], new["signed"]) == (True, True)
    assert (old["containerfile"], old["signed"]) == (False, False)
    assert new["author"] == ["EUDAT GEF team <gef@eudat.eu>"]
    assert new["descriptor_type"] == []
    [image] = new["images"]
    assert image == {
        "registry_host": "127.0.0.1:5055",
        "image_name": f"127.0.0.1:5055/toolship/clone@{_digest(2)}",
        "size": 1002,
        "updated": "2026-11-01T10:00:00Z",
        "checksum": [{"type": "sha-256", "checksum": _digest(2).removeprefix("sha256:")}],
        "image_type": "Docker",
    }
    assert tools[2]["versions"][0]["images"][0]["registry_host"] == "docker.io"


@pytest.mark.parametrize(
    ("params", "ids"),
    [
        ({"id": "nltk"}, ["nltk"]),
        ({"id": "nl"}, []),
        ({"toolname": "wc"}, ["wc"]),
        ({"alias": "clone"}, []),  # toolship gives tools no aliases
        ({"toolClass": "CommandLineTool"}, ["clone", "nltk", "wc"]),
        ({"toolClass": "Workflow"}, []),
        ({"descriptorType": "CWL"}, []),  # services have no descriptors
        ({"tags": "genomics,text"}, []),
        ({"registry": "127.0.0.1:5055"}, ["clone", "nltk"]),
        ({"registry": "docker.io"}, ["wc"]),
        ({"organization": "EUDAT"}, ["clone", "nltk", "wc"]),
        ({"organization": "ELIXIR"}, []),
        ({"name": "toolship/nltk"}, ["nltk"]),
        ({"name": "127.0.0.1:5055/toolship/clone"}, ["clone"]),
        ({"name": "library/wc"}, ["wc"]),
        ({"description": "TOKEN COUNT"}, ["nltk"]),
        ({"author": "gef team"}, ["clone"]),
        ({"checker": "true"}, []),
        ({"checker": "false"}, ["clone", "nltk", "wc"]),
        ({"registry": "127.0.0.1:5055", "description": "clone"}, ["clone"]),
    ],
)
def test_filters(catalogued: Registry, params: dict[str, str], ids: list[str]) -> None:
    assert [t["id"] for t in catalogued.get("/tools", params).json()] == ids


def test_pages_follow_the_headers(trs: Registry) -> None:
    for n in range(7):
        trs.catalog.add(_version(f"tool{n}", "1", n))
    first = trs.get("/tools", {"limit": "3"})
    assert [t["id"] for t in first.json()] == ["tool0", "tool1", "tool2"]
    assert (first.headers["current_offset"], first.headers["current_limit"]) == ("0", "3")
    assert parse_qs(urlsplit(first.headers["last_page"]).query) == {
        "limit": ["3"],
        "offset": ["6"],
    }
    seen, link = [], first.headers["self_link"]
    while link:
        url = urlsplit(link)
        assert url.path == f"{TRS}/tools"
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        page = trs.get("/tools", params)
        seen += [t["id"] for t in page.json()]
        link = page.headers.get("next_page", "")
    assert seen == [f"tool{n}" for n in range(7)]
    assert trs.get("/tools", {"offset": "7", "limit": "3"}).json() == []


def test_filters_stay_in_the_paging_links(catalogued: Registry) -> None:
    r = catalogued.get("/tools", {"registry": "127.0.0.1:5055", "limit": "1"})
    assert [t["id"] for t in r.json()] == ["clone"]
    following = parse_qs(urlsplit(r.headers["next_page"]).query)
    assert following == {"registry": ["127.0.0.1:5055"], "limit": ["1"], "offset": ["1"]}


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"offset": "next"}, "offset 'next' is not a start index"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"descriptorType": "DOCKER"}, "descriptorType"),
        ({"checker": "maybe"}, "checker"),
    ],
)
def test_bad_queries_are_trs_errors(trs: Registry, params: dict[str, str], says: str) -> None:
    assert says in trs.error("/tools", 400, params)


def test_one_tool_and_its_versions(catalogued: Registry) -> None:
    tool = catalogued.get("/tools/clone").json()
    assert [v["id"] for v in tool["versions"]] == ["1.1", "1.0"]
    versions = catalogued.get("/tools/clone/versions").json()
    assert versions == tool["versions"]
    one = catalogued.get("/tools/clone/versions/1.0").json()
    assert one == tool["versions"][1]


def test_unknown_tools_and_versions_are_404s(catalogued: Registry) -> None:
    r = catalogued.get("/tools/nope", status=404)
    assert "no tool 'nope'" in _trs_error(catalogued.schema, r)
    r = catalogued.get("/tools/clone/versions/9", status=404)
    assert "versions: 1.1, 1.0" in _trs_error(catalogued.schema, r)
    # TRS's schema lists no 404 for a tool's versions: the body is its Error all the same.
    assert "no tool 'nope'" in catalogued.error("/tools/nope/versions", 404)


def test_the_containerfile_a_version_was_built_from(catalogued: Registry) -> None:
    [file] = catalogued.get("/tools/clone/versions/1.1/containerfile").json()
    text = "FROM localhost/toolship-busybox\nLABEL eudat.gef.service.name=clone\n"
    assert file["content"] == text
    assert file["checksum"] == [
        {"type": "sha-256", "checksum": hashlib.sha256(text.encode()).hexdigest()}
    ]
    r = catalogued.get("/tools/clone/versions/1.0/containerfile", status=404)
    assert "no Containerfile is kept" in _trs_error(catalogued.schema, r)
    r = catalogued.get("/tools/clone/versions/7/containerfile", status=404)
    assert "has no version '7'" in _trs_error(catalogued.schema, r)


@pytest.mark.parametrize(
    "path",
    [
        "/tools/clone/versions/1.1/CWL/descriptor",
        "/tools/clone/versions/1.1/PLAIN_WDL/descriptor/tool.wdl",
        "/tools/clone/versions/1.1/CWL/tests",
        "/tools/clone/versions/1.1/SMK/files",
    ],
)
def test_descriptors_are_404s_saying_how_to_run(catalogued: Registry, path: str) -> None:
    r = catalogued.get(path, status=404)
    assert "POST /api/v1/services/clone/runs" in _trs_error(catalogued.schema, r)


def test_a_nested_descriptor_path_is_a_404_too(catalogued: Registry) -> None:
    # TRS allows unencoded nested paths, which openapi-core cannot match to the operation.
    path = "/tools/clone/versions/1.1/CWL/descriptor/sub/tool.cwl"
    assert "has no CWL descriptor" in catalogued.error(path, 404)


@pytest.mark.parametrize(
    "path",
    # A line break in relative_path: {relative_path:path} matches none, so no route takes it
    # (schemathesis' stateful run found FastAPI's {"detail": …} here); nor one for /nothing.
    ["/tools/clone/versions/1.1/CWL/descriptor/%0Atool.cwl", "/nothing"],
)
def test_a_url_no_trs_route_takes_is_a_trs_error(catalogued: Registry, path: str) -> None:
    assert "no TRS route answers 'GET" in catalogued.error(path, 404)
    assert catalogued.api.get("/api/v1/nothing").json() == {"detail": "Not Found"}


def test_a_missing_token_is_a_trs_error(trs: Registry) -> None:
    r = trs.api.get(f"{TRS}/tools", headers={"Authorization": ""})
    assert r.status_code == 401
    assert "bearer token" in _trs_error(trs.schema, r)


def test_toolship_documents_the_trs_errors(trs: Registry) -> None:
    paths = trs.api.get("/openapi.json").json()["paths"]
    trs_error = {"$ref": "#/components/schemas/TrsError"}
    for status, path in [("404", "/tools/{id}"), ("400", "/tools"), ("401", "/toolClasses")]:
        response = paths[f"{TRS}{path}"]["get"]["responses"][status]
        assert response["content"]["application/json"]["schema"] == trs_error
