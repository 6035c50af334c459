"""The web UI's task forms in-process: a service's run form and the raw new-task form.

What is checked is what a user of the pages would notice: the form a service's
typed ports make, each refused value shown beside its field (the catalog's and
the engine's own checks, through the API's code path), a good post creating the
task and sending the browser to it, and the refusals: no CSRF token, a viewer.
The browser itself (htmx swapping the answer in) is tested in tests/browser.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import TASKS, Server, get
from tests.api.test_services import SERVICES, TYPED

HX = {"HX-Request": "true"}
RUN = "/ui/services/wordfreq/run"
GOOD = {
    "version": "1.0",
    "in.input1": "s3://b/t",
    "param.top": "20",
    "param.fold": "true",
    "out.output1": "s3://b/c.csv",
}


def login(api: httpx.Client, token: str) -> str:
    """Log in through the login form; the session's CSRF token (as base.html carries it)."""
    form = api.get("/ui/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert nonce, form.text
    r = api.post("/ui/login", data={"token": token, "csrf": nonce.group(1), "next": "/ui/new"})
    assert r.status_code == 303, r.text
    page = api.get("/ui/new")
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


@pytest.fixture
def ui(server: Server) -> Iterator[tuple[httpx.Client, str]]:
    """The server with the wordfreq service (typed ports), logged in as its token's admin."""
    server.images.add("localhost/wordfreq:1.0", TYPED)
    with server.run() as api:
        r = api.post(SERVICES, json={"image": "localhost/wordfreq:1.0"})
        assert r.status_code == 201, r.text
        yield api, login(api, server.tokens[0])


def post(api: httpx.Client, csrf: str, path: str, data: dict[str, str]) -> httpx.Response:
    return api.post(path, data=data, headers={**HX, "X-CSRF-Token": csrf})


def error_of(page: str, slug: str) -> str:
    """The text beside field ``slug``, checked to be tied to it for assistive technology."""
    field = re.search(rf'<(?:input|select|textarea) id="field-{slug}"[^>]*>', page)
    assert field, (slug, page)
    assert 'aria-invalid="true"' in field.group(0), field.group(0)
    assert f"error-{slug}" in field.group(0), field.group(0)  # aria-describedby
    error = re.search(rf'<p class="field-error" id="error-{slug}">([^<]*)</p>', page)
    assert error, page
    return html.unescape(error.group(1))


def tasks(api: httpx.Client) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = api.get(TASKS, params={"view": "BASIC"}).json().get("tasks", [])
    return listed


def test_the_catalog_lists_and_searches_services(ui: tuple[httpx.Client, str]) -> None:
    api, _ = ui
    page = api.get("/ui/services")
    assert page.status_code == 200
    assert 'href="/ui/services/wordfreq"' in page.text
    assert '<label for="service-search">Search services' in page.text
    assert "wordfreq" in api.get("/ui/services", params={"q": "word"}).text
    missed = api.get("/ui/services", params={"q": "nothing-like-it"})
    assert 'href="/ui/services/wordfreq"' not in missed.text
    assert "No service matches" in missed.text


def test_the_service_page_shows_versions_ports_and_a_form_from_its_types(
    ui: tuple[httpx.Client, str],
) -> None:
    api, _ = ui
    page = api.get("/ui/services/wordfreq").text
    digest = api.get(f"{SERVICES}/wordfreq").json()["versions"][0]["digest"]
    assert digest in page
    assert "/data/text.txt" in page and "/data/out/counts.csv" in page
    for name in ("text", "top", "ratio", "fold", "case", "counts"):
        assert f'<label for="field-{name}">{name}</label>' in page, name
    assert re.search(r'<input id="field-top" name="param.top"[^>]*inputmode="numeric"', page)
    assert re.search(r'<select id="field-case" name="param.case"', page)
    assert '<option value="keep">keep</option>' in page
    assert "an int from 1 to 100" in page  # what the parameter takes, said beside it
    assert 'hx-post="/ui/services/wordfreq/run"' in page
    assert re.search(r"<button type=\"submit\">Run</button>", page)
    assert api.get("/ui/services/nothing-like-it").status_code == 404


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("param.top", "ten", "'ten' is not an int from 1 to 100"),
        ("param.top", "0", "is not an int from 1 to 100"),
        ("param.ratio", "1.5", "is not a float from 0 to 1"),
        ("in.input1", "", "input 'text' (input1) is required"),
        ("out.output1", "", "output 'counts' (output1) has no URL"),
    ],
)
def test_a_bad_value_answers_400_with_its_error_beside_its_field(
    ui: tuple[httpx.Client, str], field: str, value: str, said: str
) -> None:
    api, csrf = ui
    r = post(api, csrf, RUN, {**GOOD, field: value})
    assert r.status_code == 400, r.text
    slug = {"param.top": "top", "param.ratio": "ratio", "in.input1": "text"}.get(field, "counts")
    assert said in error_of(r.text, slug)
    assert '<form id="run-form"' in r.text  # the form again, what was typed kept
    assert 'value="s3://b/t"' in r.text or field == "in.input1"
    assert tasks(api) == []


def test_several_bad_values_each_go_beside_their_own_field(ui: tuple[httpx.Client, str]) -> None:
    api, csrf = ui
    r = post(api, csrf, RUN, {**GOOD, "param.top": "ten", "param.ratio": "2", "in.input1": ""})
    assert r.status_code == 400
    assert "top" in error_of(r.text, "top") and "ratio" in error_of(r.text, "ratio")
    assert "required" in error_of(r.text, "text")
    assert 'id="error-counts"' not in r.text


def test_an_input_the_storage_refuses_is_shown_beside_its_port(
    ui: tuple[httpx.Client, str],
) -> None:
    """The engine's check (the lowered task's inputs[0]) lands beside the port it came from."""
    api, csrf = ui
    r = post(api, csrf, RUN, {**GOOD, "in.input1": "file:///etc/shadow"})
    assert r.status_code == 400, r.text
    assert "inputs[0].url" in error_of(r.text, "text")
    assert tasks(api) == []


def test_a_good_run_creates_the_task_and_redirects_to_it(ui: tuple[httpx.Client, str]) -> None:
    api, csrf = ui
    r = post(api, csrf, RUN, GOOD)
    assert r.status_code == 204, r.text
    (made,) = tasks(api)
    assert r.headers["HX-Redirect"] == f"/ui/tasks/{made['id']}"
    stored = get(api, made["id"])
    assert stored["executors"][0]["command"][:5] == ["true", "/data/text.txt", "20", "0.5", "true"]
    assert stored["tags"]["toolship.service"] == "wordfreq@1.0"
    events = api.get("/api/v1/events").json()["events"]
    assert any(e["action"] == "task.create" and e["target"] == made["id"] for e in events)


def test_without_javascript_a_good_run_redirects_and_a_bad_one_shows_the_page(
    ui: tuple[httpx.Client, str],
) -> None:
    api, csrf = ui
    bad = api.post(RUN, data={**GOOD, "param.top": "ten", "csrf": csrf})
    assert bad.status_code == 400
    assert "<h1>wordfreq" in bad.text and "is not an int" in error_of(bad.text, "top")
    good = api.post(RUN, data={**GOOD, "csrf": csrf})
    assert good.status_code == 303
    assert good.headers["location"].startswith("/ui/tasks/")


def test_a_post_without_the_csrf_token_is_refused(ui: tuple[httpx.Client, str]) -> None:
    api, csrf = ui
    assert api.post(RUN, data=GOOD, headers=HX).status_code == 403
    assert api.post(RUN, data=GOOD, headers={**HX, "X-CSRF-Token": "x" + csrf}).status_code == 403
    assert api.post("/ui/new", data={"image": "busybox", "command": "true"}).status_code == 403
    assert tasks(api) == []


def user(api: httpx.Client, name: str, role: str) -> str:
    """A user the admin adds (as ``toolship user add`` does); its first token."""
    r = api.post("/api/v1/users", json={"name": name, "role": role})
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]["token"]
    return token


def test_a_viewer_gets_no_run_form_and_a_403_on_post(ui: tuple[httpx.Client, str]) -> None:
    api, _ = ui
    carol = user(api, "carol", "viewer")
    api.cookies.clear()
    csrf = login(api, carol)
    page = api.get("/ui/services/wordfreq")
    assert page.status_code == 200 and 'id="run-form"' not in page.text
    assert "may not run services" in page.text
    assert 'href="/ui/new"' not in page.text
    r = post(api, csrf, RUN, GOOD)
    assert r.status_code == 403 and "role" in r.text
    new = api.get("/ui/new")
    assert 'id="new-form"' not in new.text
    assert post(api, csrf, "/ui/new", {"image": "busybox", "command": "true"}).status_code == 403
    assert tasks(api) == []


NEW = {"name": "hello", "image": "busybox", "command": "echo 'hello world'"}


def test_the_new_task_form_has_its_labelled_fields(ui: tuple[httpx.Client, str]) -> None:
    api, _ = ui
    page = api.get("/ui/new").text
    for slug, label in [
        ("name", "Name"), ("image", "Image"), ("command", "Command"), ("inputs", "Inputs"),
        ("outputs", "Outputs"), ("cpu-cores", "CPU cores"), ("ram-gb", "RAM (GB)"),
    ]:  # fmt: skip
        assert f'<label for="field-{slug}">{label}</label>' in page, label
    assert "One argument per line" in page
    assert 'hx-post="/ui/new"' in page and '<button type="submit">Submit</button>' in page


def test_a_raw_task_is_created_as_tes_creates_it(ui: tuple[httpx.Client, str]) -> None:
    api, csrf = ui
    r = post(
        api,
        csrf,
        "/ui/new",
        {
            **NEW,
            "inputs": "s3://b/in.txt /data/in.txt\n\ns3://b/dir/ /data/dir\n",
            "outputs": "/data/out.txt s3://b/out.txt\n/data/res/ s3://b/res",
            "cpu_cores": "2",
            "ram_gb": "0.5",
        },
    )
    assert r.status_code == 204, r.text
    (made,) = tasks(api)
    assert r.headers["HX-Redirect"] == f"/ui/tasks/{made['id']}"
    stored = get(api, made["id"])
    assert stored["name"] == "hello"
    assert stored["executors"][0] == {"image": "busybox", "command": ["echo", "hello world"]}
    assert [(i["url"], i["path"], i["type"]) for i in stored["inputs"]] == [
        ("s3://b/in.txt", "/data/in.txt", "FILE"), ("s3://b/dir/", "/data/dir", "DIRECTORY"),
    ]  # fmt: skip
    assert [(o["path"], o["type"]) for o in stored["outputs"]] == [
        ("/data/out.txt", "FILE"), ("/data/res", "DIRECTORY"),
    ]  # fmt: skip
    assert stored["resources"]["cpu_cores"] == 2 and stored["resources"]["ram_gb"] == 0.5
    events = api.get("/api/v1/events").json()["events"]
    assert any(e["action"] == "task.create" and e["target"] == made["id"] for e in events)


def test_several_lines_are_one_argument_each(ui: tuple[httpx.Client, str]) -> None:
    api, csrf = ui
    r = post(api, csrf, "/ui/new", {**NEW, "command": "sh\n-c\necho a > /tmp/x\n"})
    assert r.status_code == 204, r.text
    (made,) = tasks(api)
    assert get(api, made["id"])["executors"][0]["command"] == ["sh", "-c", "echo a > /tmp/x"]


@pytest.mark.parametrize(
    ("change", "slug", "said"),
    [
        ({"image": ""}, "image", "give the image"),
        ({"image": "file:/etc/x"}, "image", "executors[0].image"),
        ({"command": ""}, "command", "give the command"),
        ({"command": "echo 'unclosed"}, "command", "No closing quotation"),
        ({"inputs": "s3://b/x"}, "inputs", "line 1: 's3://b/x' is not 'URL PATH'"),
        ({"inputs": "s3://b/x relative/path"}, "inputs", "input path"),
        ({"inputs": "file:///etc/shadow /data/x"}, "inputs", "inputs[0].url"),
        ({"outputs": "/data/x"}, "outputs", "is not 'PATH URL'"),
        ({"cpu_cores": "two"}, "cpu-cores", "'two' is not a whole number"),
        ({"cpu_cores": "0"}, "cpu-cores", "is not a whole number of cores"),
        ({"ram_gb": "lots"}, "ram-gb", "'lots' is not a number of GB"),
        ({"ram_gb": "0.0001"}, "ram-gb", "resources.ram_gb"),
    ],
)
def test_the_raw_forms_errors_are_beside_their_fields(
    ui: tuple[httpx.Client, str], change: dict[str, str], slug: str, said: str
) -> None:
    api, csrf = ui
    r = post(api, csrf, "/ui/new", {**NEW, **change})
    assert r.status_code == 400, r.text
    assert said in error_of(r.text, slug)
    assert '<form id="new-form"' in r.text and 'value="hello"' in r.text  # typed values kept
    assert tasks(api) == []


def test_names_and_values_are_shown_as_text(ui: tuple[httpx.Client, str]) -> None:
    api, csrf = ui
    evil = "<script>alert(1)</script>"
    r = post(api, csrf, "/ui/new", {**NEW, "name": evil, "image": evil})
    assert r.status_code == 400
    assert evil not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    r = post(api, csrf, RUN, {**GOOD, "param.top": evil})
    assert r.status_code == 400 and evil not in r.text
