"""The services catalog through the HTTP API alone: register, build by upload, list, run.

Images are the in-memory fake (toolship.catalog.fake): the catalog's rules, the
lowering and the trust policy are what is tested here; real podman, a real
registry and real signatures are in tests/integration/test_images.py and
tests/e2e/test_services.py.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

import httpx
import pytest

from tests.api.conftest import BATCHES, TASKS, Server, create, get, task, until, wait

SERVICES = "/api/v1/services"
BUILDS = "/api/v1/builds"

GEF_CLONE = {  # GEF's services/clone/Dockerfile, with two inputs
    "eudat.gef.service.name": "Clone",
    "eudat.gef.service.description": "Copy input to output",
    "eudat.gef.service.version": "0.1",
    "eudat.gef.service.input.1.name": "Input Directory",
    "eudat.gef.service.input.1.path": "/data/input1/",
    "eudat.gef.service.input.2.name": "Second Input",
    "eudat.gef.service.input.2.path": "/data/input2/",
    "eudat.gef.service.output.1.name": "Output Directory",
    "eudat.gef.service.output.1.path": "/data/output1/",
}

TYPED = {
    "toolship.service.name": "wordfreq",
    "toolship.service.version": "1.0",
    "toolship.service.input.text.path": "/data/text.txt",
    "toolship.service.param.top.type": "int",
    "toolship.service.param.top.min": "1",
    "toolship.service.param.top.max": "100",
    "toolship.service.param.top.default": "10",
    "toolship.service.param.ratio.type": "float",
    "toolship.service.param.ratio.min": "0",
    "toolship.service.param.ratio.max": "1",
    "toolship.service.param.ratio.default": "0.5",
    "toolship.service.param.fold.type": "bool",
    "toolship.service.param.fold.default": "false",
    "toolship.service.param.case.choices": "keep,lower",
    "toolship.service.param.case.default": "lower",
    "toolship.service.output.counts.path": "/data/out/counts.csv",
    "toolship.service.command": (
        '["true", "{text}", "{top}", "{ratio}", "{fold}", "{case}", "{counts}"]'
    ),
}


def _register(api: httpx.Client, image: str, **extra: str) -> dict[str, Any]:
    r = api.post(SERVICES, json={"image": image, **extra})
    assert r.status_code in (200, 201), r.text
    body: dict[str, Any] = r.json()
    return body


def _run(api: httpx.Client, name: str, **body: Any) -> httpx.Response:
    return api.post(f"{SERVICES}/{name}/runs", json=body)


def _task_count(api: httpx.Client) -> int:
    return len(api.get(TASKS, params={"page_size": 1000}).json().get("tasks", []))


def test_a_gef_image_registers_unchanged_and_runs_by_name(server: Server) -> None:
    server.images.add("localhost/clone:latest", GEF_CLONE, cmd=["true"])
    with server.run() as api:
        version = _register(api, "localhost/clone")
        assert (version["name"], version["version"]) == ("Clone", "0.1")
        assert version["image"] == f"localhost/clone@{version['digest']}"
        ports = version["interface"]["inputs"]
        assert [(p["name"], p["key"], p["kind"]) for p in ports] == [
            ("Input Directory", "input1", "directory"),
            ("Second Input", "input2", "directory"),
        ]
        listed = api.get(SERVICES).json()["services"]
        assert [(s["name"], s["latest"]) for s in listed] == [("Clone", "0.1")]

        r = _run(
            api,
            "Clone",
            inputs={"Input Directory": "s3://bucket/a.txt", "input2": "s3://bucket/more/"},
            outputs={"Output Directory": "s3://bucket/out/"},
        )
        assert r.status_code == 200, r.text
        task_id = r.json()["id"]
        assert wait(api, task_id) == "COMPLETE"
        stored = get(api, task_id)
        assert stored["executors"][0]["image"] == version["image"]
        assert stored["tags"]["toolship.service"] == "Clone@0.1"
        staged = {(i["path"], i["type"]) for i in stored["inputs"]}
        assert staged == {("/data/input1/a.txt", "FILE"), ("/data/input2", "DIRECTORY")}
        assert stored["outputs"][0]["type"] == "DIRECTORY"

        # Registering the same image again is the same version, not a new one.
        r = api.post(SERVICES, json={"image": "localhost/clone:latest"})
        assert r.status_code == 200 and r.json()["version"] == "0.1"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"inputs": {}}, "input 'text' (input1) is required"),
        ({"inputs": {"text": "s3://b/t", "txet": "s3://b/x"}}, "'txet'"),
        ({"parameters": {"top": "ten"}}, "top"),
        ({"parameters": {"top": 0}}, "top"),
        ({"parameters": {"ratio": "1.5"}}, "ratio"),
        ({"parameters": {"fold": "maybe"}}, "fold"),
        ({"parameters": {"case": "upper"}}, "case"),
        ({"parameters": {"colour": "red"}}, "colour"),
    ],
)
def test_each_bad_value_gets_its_400_before_anything_runs(
    server: Server, body: dict[str, Any], expected: str
) -> None:
    server.images.add("localhost/wordfreq:1.0", TYPED)
    run = {"inputs": {"text": "s3://b/t"}, "outputs": {"counts": "s3://b/c.csv"}}
    for key, value in body.items():
        run[key] = {**run[key], **value} if key == "inputs" and value else value
    with server.run() as api:
        _register(api, "localhost/wordfreq:1.0")
        r = _run(api, "wordfreq", **run)
        assert r.status_code == 400, r.text
        assert expected in r.json()["detail"]
        assert _task_count(api) == 0


def test_the_right_values_run_with_the_template_filled(server: Server) -> None:
    server.images.add("localhost/wordfreq:1.0", TYPED)
    with server.run() as api:
        _register(api, "localhost/wordfreq:1.0")
        r = _run(
            api,
            "wordfreq",
            inputs={"text": "s3://b/t"},
            parameters={"top": "20", "ratio": 0.25, "fold": "yes", "case": "keep"},
            outputs={"counts": "s3://b/c.csv"},
            task={"name": "count", "tags": {"project": "p1"}},
        )
        assert r.status_code == 200, r.text
        stored = get(api, r.json()["id"])
        assert stored["executors"][0]["command"] == [
            "true", "/data/text.txt", "20", "0.25", "true", "keep", "/data/out/counts.csv",
        ]  # fmt: skip
        assert stored["name"] == "count" and stored["tags"]["project"] == "p1"


def test_a_moved_tag_is_a_new_version_and_the_old_one_still_runs_its_digest(
    server: Server,
) -> None:
    old = server.images.add("localhost/wordfreq:1.0", TYPED)
    with server.run() as api:
        first = _register(api, "localhost/wordfreq:1.0")
        new = server.images.add("localhost/wordfreq:1.0", {**TYPED, "extra": "moved"})
        second = _register(api, "localhost/wordfreq:1.0")
        assert second["digest"] == new.digest != old.digest
        assert second["version"] == f"1.0+{new.digest[7:19]}"
        assert first["digest"] == old.digest
        ids = {
            v: _run(
                api,
                "wordfreq",
                version=v,
                inputs={"text": "s3://b/t"},
                outputs={"counts": "s3://b/c.csv"},
            ).json()["id"]
            for v in (first["version"], second["version"])
        }
        images = {v: get(api, i)["executors"][0]["image"] for v, i in ids.items()}
        assert images == {first["version"]: old.image, second["version"]: new.image}
        # The old version stays as it was registered.
        again = api.get(f"{SERVICES}/wordfreq/versions/1.0").json()
        assert again["digest"] == old.digest


def test_deprecated_versions_are_hidden_and_refused_for_new_runs(server: Server) -> None:
    server.images.add("localhost/clone:latest", GEF_CLONE)
    with server.run() as api:
        _register(api, "localhost/clone")
        r = api.post(f"{SERVICES}/Clone/versions/0.1/deprecate")
        assert r.status_code == 200 and r.json()["deprecated"] is True
        assert api.get(SERVICES).json()["services"] == []
        r = _run(api, "Clone", version="0.1", outputs={"output1": "s3://b/o/"})
        assert r.status_code == 400 and "deprecated" in r.json()["detail"]
        # No version named: the service exists, so a 400 naming the fix, not a 404
        # (schemathesis' stateful run: registered, then not found).
        r = _run(api, "Clone", outputs={"output1": "s3://b/o/"})
        assert r.status_code == 400, r.text
        assert "every version of service 'Clone' is deprecated (0.1)" in r.json()["detail"]
        assert "toolship service add" in r.json()["detail"]
        assert api.get(f"{SERVICES}/Clone").json()["versions"][0]["deprecated"] is True


def test_unknown_services_and_versions_are_404s_that_say_what_exists(server: Server) -> None:
    server.images.add("localhost/clone:latest", GEF_CLONE)
    with server.run() as api:
        _register(api, "localhost/clone")
        r = _run(api, "clone")
        assert r.status_code == 404 and "'Clone'" in r.json()["detail"]
        r = api.get(f"{SERVICES}/Clone/versions/9")
        assert r.status_code == 404 and "versions: 0.1" in r.json()["detail"]
        r = api.post(SERVICES, json={"image": "localhost/nothing:1"})
        assert r.status_code == 400 and "localhost/nothing:1" in r.json()["detail"]


def test_an_image_without_a_name_needs_one(server: Server) -> None:
    server.images.add("localhost/anon:1", {})
    with server.run() as api:
        r = api.post(SERVICES, json={"image": "localhost/anon:1"})
        assert r.status_code == 400 and "--name" in r.json()["detail"]
        named = _register(api, "localhost/anon:1", name="anon", version="1")
        assert (named["name"], named["version"]) == ("anon", "1")


def test_policy_catalog_runs_only_catalogued_images(server: Server) -> None:
    server.config = {"images": {"trust": "catalog"}}
    listed = server.images.add("localhost/clone:latest", GEF_CLONE, cmd=["true"])
    server.images.add("localhost/other:latest", {}, cmd=["true"])
    with server.run() as api:
        r = api.post(TASKS, json=task("true"))  # busybox: not in the catalog (nor here)
        assert r.status_code == 400
        r = api.post(TASKS, json={"executors": [{"image": "localhost/other", "command": ["true"]}]})
        assert r.status_code == 400, r.text
        detail = r.json()["detail"]
        assert "images.trust = 'catalog'" in detail and "toolship service add" in detail
        _register(api, "localhost/clone")
        task_id = create(api, **{"executors": [{"image": "localhost/clone", "command": ["true"]}]})
        assert wait(api, task_id) == "COMPLETE"
        # It ran the digest the tag named when the task was created.
        assert server.fake.attempts[-1].job.task.executors[0].image == listed.image
        # What the client sent is what it reads back.
        assert get(api, task_id)["executors"][0]["image"] == "localhost/clone"


def test_policy_digest_pins_the_tag_at_creation(server: Server) -> None:
    server.config = {"images": {"trust": "digest"}}
    first = server.images.add("localhost/tool:latest", {}, cmd=["true"])
    with server.run() as api:
        task_id = create(api, **{"executors": [{"image": "localhost/tool", "command": ["true"]}]})
        server.images.add("localhost/tool:latest", {"moved": "yes"}, cmd=["true"])
        assert wait(api, task_id) == "COMPLETE"
        assert server.fake.attempts[-1].job.task.executors[0].image == first.image


def test_approved_registries_refuse_other_registries(server: Server) -> None:
    server.config = {"images": {"approved_registries": ["127.0.0.1:5055"]}}
    with server.run() as api:
        r = api.post(TASKS, json=task("true"))
        assert r.status_code == 400, r.text
        detail = r.json()["detail"]
        assert "docker.io" in detail and "images.approved_registries" in detail
        # Advertised: as fields in the TRS service-info, in words in the TES one.
        info = api.get("/ga4gh/trs/v2/service-info").json()
        assert info["approved_registries"] == ["127.0.0.1:5055"]
        tes = api.get("/ga4gh/tes/v1/service-info").json()
        assert "images only from 127.0.0.1:5055" in tes["description"]


def _context(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _build(api: httpx.Client, files: dict[str, str], **form: str) -> dict[str, Any]:
    r = api.post(BUILDS, files={"context": ("ctx.tar.gz", _context(files))}, data=form)
    assert r.status_code == 202, r.text
    build_id = r.json()["id"]
    done = until(
        "the build ends",
        lambda: (b := api.get(f"{BUILDS}/{build_id}").json())["state"] != "RUNNING" and b,
    )
    assert isinstance(done, dict)
    return done


CONTAINERFILE = """FROM localhost/toolship-busybox
LABEL "eudat.gef.service.name"="Clone" "eudat.gef.service.version"="0.2"
LABEL "eudat.gef.service.input.1.name"="Input Directory" "eudat.gef.service.input.1.path"="/in/"
LABEL "eudat.gef.service.output.1.name"="Output Directory" "eudat.gef.service.output.1.path"="/out/"
CMD ["true"]
"""


def test_build_by_upload_streams_its_log_and_registers(server: Server) -> None:
    with server.run() as api:
        build = _build(api, {"Containerfile": CONTAINERFILE})
        assert build["state"] == "SUCCEEDED", build
        assert build["service"]["name"] == "Clone" and build["service"]["version"] == "0.2"
        assert build["service"]["containerfile"] is True
        log = api.get(f"{BUILDS}/{build['id']}/log").text
        assert "STEP 1/2" in log and "registered Clone@0.2" in log
        assert [s["name"] for s in api.get(SERVICES).json()["services"]] == ["Clone"]


def test_a_failing_build_shows_the_failing_step(server: Server) -> None:
    with server.run() as api:
        build = _build(api, {"Containerfile": "FROM localhost/toolship-busybox\nRUN false\n"})
        assert build["state"] == "FAILED"
        assert "RUN false" in build["error"]
        log = api.get(f"{BUILDS}/{build['id']}/log").text
        assert 'building at STEP "RUN false"' in log
        assert api.get(SERVICES).json()["services"] == []


def test_a_build_context_without_a_containerfile_is_a_400(server: Server) -> None:
    with server.run() as api:
        r = api.post(BUILDS, files={"context": ("c.tar.gz", _context({"README": "x"}))})
        assert r.status_code == 400 and "Containerfile" in r.json()["detail"]
        r = api.post(BUILDS, files={"context": ("c.tar", b"not a tar")})
        assert r.status_code == 400, r.text


def test_registering_from_an_unapproved_registry_asks_nothing_of_it(server: Server) -> None:
    server.config = {"images": {"approved_registries": ["127.0.0.1:5055"]}}
    with server.run() as api:
        r = api.post(SERVICES, json={"image": "evil.example.org/tool:1"})
        assert r.status_code == 400 and "approved" in r.json()["detail"], r.text
    assert server.images.asked == []


def test_a_sweep_of_a_service_checks_and_lowers_each_row(server: Server) -> None:
    server.images.add("localhost/wordfreq:1.0", TYPED)
    service = {
        "name": "wordfreq",
        "inputs": {"text": "s3://b/{book}.txt"},
        "parameters": {"top": "{top}"},
        "outputs": {"counts": "s3://b/out/{book}-{top}.csv"},
        "task": {"name": "count-{book}-{top}"},
    }
    rows = [{"book": "a", "top": 5}, {"book": "b", "top": 50}]
    with server.run() as api:
        _register(api, "localhost/wordfreq:1.0")
        r = api.post("/api/v1/batches", json={"service": service, "params": rows})
        assert r.status_code == 200, r.text
        members = [get(api, t) for t in r.json()["task_ids"]]
        assert [m["name"] for m in members] == ["count-a-5", "count-b-50"]
        assert [m["executors"][0]["command"][2] for m in members] == ["5", "50"]
        assert members[1]["inputs"][0]["url"] == "s3://b/b.txt"
        assert members[1]["executors"][0]["env"]["TOOLSHIP_ARRAY_INDEX"] == "1"
        assert members[0]["tags"]["toolship.service"] == "wordfreq@1.0"
        # A row whose value does not fit its parameter is refused, naming the row.
        bad = api.post(
            "/api/v1/batches", json={"service": service, "params": [*rows, {"book": "c", "top": 0}]}
        )
        assert bad.status_code == 400 and bad.json()["detail"].startswith("params[2]: ")
        assert "'top'" in bad.json()["detail"]


def test_a_map_of_a_service_stages_each_object_into_its_port(server: Server, tmp_path: Any) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("x.txt", "y.txt"):
        (raw / name).write_text(name)
    server.images.add("localhost/clone:latest", GEF_CLONE, cmd=["true"])
    batch = {
        "service": {"name": "Clone", "port": "Input Directory"},
        "map": {"over": f"file://{raw}/*.txt", "to": f"file://{tmp_path}/out"},
    }
    with server.run() as api:
        _register(api, "localhost/clone")
        r = api.post("/api/v1/batches", json=batch)
        assert r.status_code == 400 and "'Second Input'" in r.json()["detail"], r.text
        batch["service"]["inputs"] = {"input2": "s3://b/common/"}  # type: ignore[index]
        r = api.post("/api/v1/batches", json=batch)
        assert r.status_code == 200, r.text
        members = [get(api, t) for t in r.json()["task_ids"]]
        assert [m["name"] for m in members] == ["x", "y"]
        first = members[0]
        assert {(i["path"], i["url"]) for i in first["inputs"]} == {
            ("/data/input2", "s3://b/common"),
            ("/data/input1/x.txt", f"file://{raw}/x.txt"),
        }
        # The service's only output folder is what goes to TO/map/ITEM.
        assert [(o["path"], o["url"]) for o in first["outputs"]] == [
            ("/data/output1", f"file://{tmp_path}/out/map/x")
        ]
        r = api.post(
            "/api/v1/batches", json={**batch, "service": {"name": "Clone", "port": "nope"}}
        )
        assert r.status_code == 400 and "directory input ports are" in r.json()["detail"]


def test_a_batch_resolves_each_image_once(server: Server) -> None:
    server.config = {"images": {"trust": "digest"}}
    tool = server.images.add("localhost/tool:latest", {}, cmd=["true"])
    template = {"executors": [{"image": "localhost/tool", "command": ["echo", "{x}"]}]}
    with server.run() as api:
        r = api.post(BATCHES, json={"template": template, "params": [{"x": i} for i in range(20)]})
        assert r.status_code == 200, r.text
        assert server.images.asked == ["localhost/tool"]
        for task_id in r.json()["task_ids"][:3]:
            assert wait(api, task_id) == "COMPLETE"
        assert {a.job.task.executors[0].image for a in server.fake.attempts} == {tool.image}


def test_a_version_from_a_registry_is_pulled_onto_the_server_when_registered(
    server: Server,
) -> None:
    labels = {"toolship.service.name": "tool"}
    server.images.add("127.0.0.1:5055/team/tool:1", labels, source="registry")
    with server.run() as api:
        version = _register(api, "127.0.0.1:5055/team/tool:1")
        assert server.images.pulled == [version["image"]]


def test_the_catalogs_own_registry_is_approved_for_registering_and_running(
    server: Server,
) -> None:
    server.config = {
        "images": {"approved_registries": ["docker.io/library"], "registry": "127.0.0.1:5055/cat"}
    }
    labels = {"toolship.service.name": "tool"}
    server.images.add("127.0.0.1:5055/cat/tool:1", labels, source="registry")
    with server.run() as api:
        _register(api, "127.0.0.1:5055/cat/tool:1")
        r = _run(api, "tool")
        assert r.status_code == 200, r.text
        r = api.post(TASKS, json={"executors": [{"image": "10.0.0.1:5000/x", "command": ["true"]}]})
        assert r.status_code == 400 and "images.approved_registries" in r.json()["detail"]
