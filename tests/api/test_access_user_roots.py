"""``storage.allowed_roots = ["/data/{user}"]``: each task reads and writes its owner's
area only, at admission and again when the worker stages (in process: the real local
backend and worker, the fake runtime)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import TASKS, Server, get, wait
from tests.api.principals import by, with_users
from tests.api.test_real_worker import local
from toolship.storage.local import LocalStorage


@pytest.fixture(autouse=True)
def _users(monkeypatch: pytest.MonkeyPatch) -> None:
    with_users(monkeypatch)


def _copy(src: Path, dest: Path) -> dict[str, object]:
    return {
        "executors": [{"image": "x", "command": ["cp", "/in/data.txt", "/out/copy.txt"]}],
        "inputs": [{"path": "/in/data.txt", "url": f"file://{src}"}],
        "outputs": [{"path": "/out/copy.txt", "url": f"file://{dest}"}],
    }


def test_each_user_reads_and_writes_only_their_own_area(server: Server, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name in ("alice", "bob"):
        (data / name).mkdir(parents=True)
        (data / name / "in.txt").write_text(f"{name}'s data\n")
    server.config = {
        "local": {"runtime": "process", "accounting": False, "cpus": 2, "memory_gb": 8},
        "storage": {"allowed_roots": [str(data / "{user}")]},
    }
    with server.run(local) as api:
        mine = _copy(data / "alice" / "in.txt", data / "alice" / "out.txt")
        r = api.post(TASKS, json=mine, headers=by("alice"))
        assert r.status_code == 200, r.text
        assert wait(api, r.json()["id"]) == "COMPLETE", get(api, r.json()["id"])["logs"]
        assert (data / "alice" / "out.txt").read_text() == "alice's data\n"

        for doc in (_copy(data / "alice" / "in.txt", data / "bob" / "out.txt"),
                    _copy(data / "bob" / "in.txt", data / "alice" / "stolen.txt")):  # fmt: skip
            r = api.post(TASKS, json=doc, headers=by("bob"))
            assert r.status_code == 400, r.text
            detail = r.json()["detail"]
            assert "outside the allowed roots" in detail and str(data / "bob") in detail
            assert str(data / "{user}") not in detail
        assert not (data / "alice" / "stolen.txt").exists()
        r = api.post("/api/v1/batches", json={"tasks": [mine]}, headers=by("bob"))
        assert r.status_code == 400 and "outside the allowed roots" in r.text, r.text


def test_a_name_that_is_not_one_path_component_gets_no_area(tmp_path: Path) -> None:
    storage = LocalStorage([tmp_path / "shared", tmp_path / "{user}"])
    assert storage.roots == [(tmp_path / "shared").resolve()]
    assert storage.for_owner("alice").roots[-1] == (tmp_path / "alice").resolve()
    for bad in (None, "", ".", "..", "a/b", "../etc"):
        assert storage.for_owner(bad).roots == storage.roots, bad
    assert LocalStorage([tmp_path]).for_owner("alice").roots == [tmp_path.resolve()]
