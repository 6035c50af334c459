"""Bad requests get a 400 that names the problem, and the server keeps serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

TES = "/ga4gh/tes/v1"


def task(busybox: str, **extra: Any) -> dict[str, Any]:
    return {"executors": [{"image": busybox, "command": ["true"]}], **extra}


def assert_400(response: httpx.Response, *needles: str) -> None:
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    for needle in needles:
        assert needle in detail, detail


def test_malformed_json(api: httpx.Client) -> None:
    r = api.post(
        f"{TES}/tasks", content=b'{"executors": [', headers={"content-type": "application/json"}
    )
    assert_400(r, "not valid JSON")


def test_unknown_field(api: httpx.Client, busybox: str) -> None:
    assert_400(api.post(f"{TES}/tasks", json=task(busybox, priority=3)), "unknown field 'priority'")


def test_relative_path(api: httpx.Client, busybox: str) -> None:
    doc = task(busybox, inputs=[{"path": "in.txt", "url": "file:///tmp/x"}])
    assert_400(api.post(f"{TES}/tasks", json=doc), "inputs.0.path", "absolute path")


def test_input_path_escaping(api: httpx.Client, busybox: str) -> None:
    doc = task(busybox, inputs=[{"path": "/work/../../etc/passwd", "url": "file:///tmp/x"}])
    assert_400(api.post(f"{TES}/tasks", json=doc), "'..'")


def test_file_url_outside_allowed_roots(api: httpx.Client, busybox: str) -> None:
    doc = task(busybox, inputs=[{"path": "/in/shadow", "url": "file:///etc/shadow"}])
    assert_400(api.post(f"{TES}/tasks", json=doc), "inputs[0].url", "outside the allowed roots")


def test_symlink_out_of_an_allowed_root(api: httpx.Client, busybox: str, tmp_path: Path) -> None:
    link = tmp_path / "innocent.txt"
    link.symlink_to("/etc/shadow")
    doc = task(busybox, inputs=[{"path": "/in/x", "url": f"file://{link}"}])
    assert_400(api.post(f"{TES}/tasks", json=doc), "resolves to /etc/shadow")


def test_output_outside_allowed_roots(api: httpx.Client, busybox: str) -> None:
    doc = task(busybox, outputs=[{"path": "/out/x", "url": "file:///etc/cron.d/x"}])
    assert_400(api.post(f"{TES}/tasks", json=doc), "outputs[0].url")


def test_unsupported_scheme(api: httpx.Client, busybox: str) -> None:
    doc = task(busybox, inputs=[{"path": "/in/x", "url": "gopher://host/x"}])
    assert_400(api.post(f"{TES}/tasks", json=doc), "cannot stage gopher://")


def test_strict_backend_parameters(api: httpx.Client, busybox: str) -> None:
    doc = task(busybox, resources={"backend_parameters": {"VmSize": "x"},
                                   "backend_parameters_strict": True})  # fmt: skip
    assert_400(api.post(f"{TES}/tasks", json=doc), "'VmSize' is not supported")


def test_bad_query_parameters(api: httpx.Client) -> None:
    assert_400(api.get(f"{TES}/tasks", params={"view": "EVERYTHING"}), "view", "MINIMAL")
    assert_400(api.get(f"{TES}/tasks", params={"page_size": 5000}), "page_size")
    assert_400(api.get(f"{TES}/tasks", params={"page_token": "garbage!"}), "page_token")
    assert_400(api.get(f"{TES}/tasks", params={"state": "DONE"}), "state", "QUEUED")


def test_unknown_task_is_404_and_server_still_serves(api: httpx.Client, busybox: str) -> None:
    assert api.get(f"{TES}/tasks/nope").status_code == 404
    assert api.post(f"{TES}/tasks/nope:cancel").status_code == 404
    r = api.post(f"{TES}/tasks", json=task(busybox))
    assert r.status_code == 200 and r.json()["id"]
