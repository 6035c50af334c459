"""The result cache in process: the real local backend and worker (staging, delivery,
recorded digests), the fake runtime instead of podman, the fake catalog images.

A second identical task is answered from the first (its outputs copied, no executor
run); one changed input byte, one env var, a moved tag each miss.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.api.conftest import TASKS, TOKEN, Server, get, until, wait
from tests.api.test_real_worker import local
from toolship.catalog.images import ImageFacts
from toolship.cli.cache import cache as cache_cli
from toolship.cli.context import Ctx
from toolship.client import Client
from toolship.supply.cache import CACHED_FROM
from toolship.supply.images import image_uses

IMAGE = "tool:1"


def runtime_digest(image: str) -> str:
    """The digest the fake runtime says ``image`` has when an executor starts."""
    return "sha256:" + hashlib.sha256(b"manifest " + image.encode()).hexdigest()


def tag(server: Server, reference: str, digest: str) -> None:
    """Point ``reference`` (the catalog's images: what the server resolves) at ``digest``."""
    server.images.tags[reference] = ImageFacts(
        repository=reference.rpartition(":")[0], digest=digest, image_id=digest,
        size=1, created=None,
    )  # fmt: skip


@pytest.fixture
def cached(server: Server) -> Server:
    server.config = {"local": {"accounting": False, "cpus": 2, "memory_gb": 8}}
    tag(server, IMAGE, runtime_digest(IMAGE))
    return server


def doc(data: Path, out: Path, *, env: dict[str, str] | None = None, **params: str) -> Any:
    executor: dict[str, Any] = {"image": IMAGE, "command": ["cp", "/in/data.txt", "/out/copy.txt"]}
    if env:
        executor["env"] = env
    return {
        "executors": [executor],
        "inputs": [{"path": "/in/data.txt", "url": f"file://{data}"},
                   {"path": "/in/note", "content": "a note\n"}],
        "outputs": [{"path": "/out/copy.txt", "url": f"file://{out}"}],
        "resources": {"backend_parameters": {"runtime": "podman", "cache": "true", **params}},
    }  # fmt: skip


def submit(api: httpx.Client, body: Any) -> str:
    r = api.post(TASKS, json=body)
    assert r.status_code == 200, r.text
    task_id: str = r.json()["id"]
    assert wait(api, task_id) == "COMPLETE", get(api, task_id)["logs"]
    return task_id


def keys(api: httpx.Client) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = api.get("/api/v1/cache").json()["entries"]
    return entries


def cached_from(api: httpx.Client, task_id: str) -> str | None:
    return (get(api, task_id)["logs"][-1].get("metadata") or {}).get(CACHED_FROM)


def first_run(api: httpx.Client, data: Path, out: Path) -> str:
    first = submit(api, doc(data, out))
    until("the first task's key is stored", lambda: keys(api))
    return first


def test_a_second_identical_task_is_answered_from_the_first(cached: Server, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("the input\n")
    with cached.run(local) as api:
        first = first_run(api, data, tmp_path / "a" / "copy.txt")
        [entry] = keys(api)
        assert entry["task_id"] == first and entry["key"].startswith("sha256:")
        second = submit(api, doc(data, tmp_path / "b" / "copy.txt"))
        assert cached_from(api, second) == first
        assert (tmp_path / "b" / "copy.txt").read_text() == "the input\n"
        attempt = get(api, second)["logs"][-1]
        assert attempt["logs"] == []  # no executor ran
        assert [o["url"] for o in attempt["outputs"]] == [f"file://{tmp_path}/b/copy.txt"]
        sha = hashlib.sha256(b"the input\n").hexdigest()
        assert attempt["metadata"]["sha256:/out/copy.txt"] == sha
        assert attempt["metadata"]["sha256:/in/data.txt"] == sha
        assert [u.digest for u in image_uses(attempt["metadata"])] == [runtime_digest(IMAGE)]
        assert "answered from the result cache" in attempt["system_logs"][-1]


def test_one_input_byte_one_env_var_or_a_moved_tag_misses(cached: Server, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("the input\n")
    with cached.run(local) as api:
        first = first_run(api, data, tmp_path / "a" / "copy.txt")
        env = submit(api, doc(data, tmp_path / "env.txt", env={"X": "1"}))
        assert cached_from(api, env) is None
        tag(cached, IMAGE, "sha256:" + "0" * 64)  # the tag moved
        assert cached_from(api, submit(api, doc(data, tmp_path / "tag.txt"))) is None
        tag(cached, IMAGE, runtime_digest(IMAGE))
        data.write_text("the inpuT\n")
        assert cached_from(api, submit(api, doc(data, tmp_path / "byte.txt"))) is None
        # the env and byte tasks' keys are stored (the inputs hashed again after the run:
        # the file is restored only then); the moved tag's is not: it ran another digest
        until("the env and byte tasks' keys", lambda: len(keys(api)) == 3)
        data.write_text("the input\n")
        assert cached_from(api, submit(api, doc(data, tmp_path / "same.txt"))) == first
        assert len(keys(api)) == 3


def test_an_output_changed_since_is_a_miss_and_its_key_is_dropped(
    cached: Server, tmp_path: Path
) -> None:
    data = tmp_path / "data.txt"
    data.write_text("the input\n")
    with cached.run(local) as api:
        first = first_run(api, data, tmp_path / "a" / "copy.txt")
        (tmp_path / "a" / "copy.txt").write_text("edited by hand\n")
        second = submit(api, doc(data, tmp_path / "b" / "copy.txt"))
        assert cached_from(api, second) is None  # it ran
        assert (tmp_path / "b" / "copy.txt").read_text() == "the input\n"
        until("the second task's key replaces the first's",
              lambda: [e["task_id"] for e in keys(api)] == [second])  # fmt: skip
        assert first != second


def test_without_cache_nothing_is_stored_or_looked_up(cached: Server, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("the input\n")
    with cached.run(local) as api:
        first_run(api, data, tmp_path / "a" / "copy.txt")
        body = doc(data, tmp_path / "b" / "copy.txt")
        del body["resources"]["backend_parameters"]["cache"]
        plain = submit(api, body)
        assert cached_from(api, plain) is None
        assert len(keys(api)) == 1


def test_what_cannot_be_cached_is_refused_saying_why(cached: Server, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("x")
    cached.config["policy"] = {"runtimes": ["podman", "process"]}
    with cached.run(local) as api:
        r = api.post(TASKS, json=doc(data, tmp_path / "o", runtime="process"))
        assert r.status_code == 400 and "process runtime" in r.json()["detail"]
        r = api.post(TASKS, json=doc(data, tmp_path / "o", cache="maybe"))
        assert r.status_code == 400 and "must be true or false" in r.json()["detail"]
        r = api.post("/api/v1/batches", json={"tasks": [doc(data, tmp_path / "o")]})
        assert r.status_code == 400 and "one by one" in r.json()["detail"], r.text


def test_keys_are_listed_and_forgotten_by_sdk_and_cli(cached: Server, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("the input\n")
    with cached.run(local) as api:
        first = first_run(api, data, tmp_path / "a" / "copy.txt")
        client = Client("http://toolship.test", TOKEN, transport=api._transport)
        [entry] = client.cache_entries()
        assert entry.task_id == first
        ctx = Ctx(server=None, token=None, _client=client)
        listed = CliRunner().invoke(cache_cli, ["ls"], obj=ctx, catch_exceptions=False)
        assert f"{entry.key}  {entry.created}  {first}" in listed.output
        removed = CliRunner().invoke(cache_cli, ["rm", entry.key], obj=ctx)
        assert removed.exit_code == 0 and f"forgot {entry.key}" in removed.output
        assert client.cache_entries() == []
        assert api.delete(f"/api/v1/cache/{entry.key}").status_code == 404
        bad = api.delete("/api/v1/cache/nope")
        assert bad.status_code == 400 and "cache ls" in bad.json()["detail"]
        second = submit(api, doc(data, tmp_path / "b" / "copy.txt"))
        assert cached_from(api, second) is None  # forgotten: it ran
