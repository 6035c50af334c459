"""Bad requests get a 400 (or 404, 413) that names the problem, and the server keeps serving.

Moved here from tests/e2e/test_bad_input.py, tests/security/test_bad_requests.py and
tests/security/test_limits.py (issue 12, items 12 and 13): none of it needs a container.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import BATCHES, TASKS, Server

TES = "/ga4gh/tes/v1"


def task(**extra: Any) -> dict[str, Any]:
    return {"executors": [{"image": "localhost/toolship-busybox", "command": ["true"]}], **extra}


def bad(r: httpx.Response, *words: str) -> str:
    assert r.status_code == 400, (r.status_code, r.text[:500])
    assert r.headers["content-type"] == "application/json"
    detail: str = r.json()["detail"]
    assert set(r.json()) == {"detail"}
    for word in words:
        assert word in detail, detail
    return detail


# --- from tests/e2e/test_bad_input.py ---------------------------------------------


def test_malformed_json(api: httpx.Client) -> None:
    r = api.post(TASKS, content=b'{"executors": [', headers={"content-type": "application/json"})
    bad(r, "not valid JSON")


def test_unknown_field(api: httpx.Client) -> None:
    bad(api.post(TASKS, json=task(priority=3)), "unknown field 'priority'")


def test_missing_field(api: httpx.Client) -> None:
    bad(api.post(TASKS, json={"name": "x"}), "missing required field 'executors'")


def test_relative_path(api: httpx.Client) -> None:
    doc = task(inputs=[{"path": "in.txt", "url": "file:///tmp/x"}])
    bad(api.post(TASKS, json=doc), "inputs.0.path", "absolute path")


def test_input_path_escaping(api: httpx.Client) -> None:
    doc = task(inputs=[{"path": "/work/../../etc/passwd", "url": "file:///tmp/x"}])
    bad(api.post(TASKS, json=doc), "'..'")


def test_file_url_outside_allowed_roots(api: httpx.Client) -> None:
    doc = task(inputs=[{"path": "/in/shadow", "url": "file:///etc/shadow"}])
    bad(api.post(TASKS, json=doc), "inputs[0].url", "outside the allowed roots")


def test_symlink_out_of_an_allowed_root(api: httpx.Client, tmp_path: Path) -> None:
    link = tmp_path / "innocent.txt"
    link.symlink_to("/etc/shadow")
    doc = task(inputs=[{"path": "/in/x", "url": f"file://{link}"}])
    bad(api.post(TASKS, json=doc), "resolves to /etc/shadow")


def test_output_outside_allowed_roots(api: httpx.Client) -> None:
    doc = task(outputs=[{"path": "/out/x", "url": "file:///etc/cron.d/x"}])
    bad(api.post(TASKS, json=doc), "outputs[0].url")


def test_unsupported_scheme(api: httpx.Client) -> None:
    doc = task(inputs=[{"path": "/in/x", "url": "gopher://host/x"}])
    bad(api.post(TASKS, json=doc), "cannot stage gopher://")


def test_strict_backend_parameters(api: httpx.Client) -> None:
    doc = task(resources={"backend_parameters": {"VmSize": "x"},
                          "backend_parameters_strict": True})  # fmt: skip
    bad(api.post(TASKS, json=doc), "'VmSize' is not supported")


def test_bad_query_parameters(api: httpx.Client) -> None:
    bad(api.get(TASKS, params={"view": "EVERYTHING"}), "view", "MINIMAL")
    bad(api.get(f"{TASKS}/x", params={"view": "EVERYTHING"}), "view", "MINIMAL")
    bad(api.get(TASKS, params={"page_size": 5000}), "page_size")
    bad(api.get(TASKS, params={"page_size": 0}), "page_size")
    bad(api.get(TASKS, params={"page_token": "garbage!"}), "page_token")
    bad(api.get(TASKS, params={"state": "DONE"}), "state", "QUEUED")
    bad(api.get(TASKS, params=[("tag_key", "a"), ("tag_value", "1"), ("tag_value", "2")]),
        "more tag_value than tag_key")  # fmt: skip


def test_unknown_task_is_404_and_server_still_serves(api: httpx.Client) -> None:
    for r in (
        api.get(f"{TASKS}/nope"),
        api.get(f"{TASKS}/nope", params={"view": "FULL"}),
        api.post(f"{TASKS}/nope:cancel"),
        api.get("/api/v1/tasks/nope"),
        api.get("/api/v1/tasks/nope/wait", params={"timeout": 0}),
    ):
        assert r.status_code == 404, r.text
        assert "nope" in r.json()["detail"], r.text
    r = api.post(TASKS, json=task())
    assert r.status_code == 200 and r.json()["id"]


# --- from tests/security/test_bad_requests.py ---------------------------------------


def test_a_lone_surrogate_in_a_task_name_is_a_400(api: httpx.Client) -> None:
    body = b'{"name": "x\\ud800", "executors": [{"image": "localhost/toolship-busybox", '
    body += b'"command": ["true"]}]}'
    r = api.post(TASKS, content=body, headers={"Content-Type": "application/json"})
    bad(r, "name", "surrogate")


def test_a_lone_surrogate_in_a_batch_name_is_a_400(api: httpx.Client) -> None:
    body = b'{"name": "\\udfff", "tasks": [{"executors": [{"image": "x", "command": ["true"]}]}]}'
    r = api.post(BATCHES, content=body, headers={"Content-Type": "application/json"})
    bad(r, "surrogate")


def test_a_24_digit_page_token_is_a_400(api: httpx.Client) -> None:
    token = base64.urlsafe_b64encode(b"s" + b"9" * 24).decode().rstrip("=")
    bad(api.get(TASKS, params={"page_token": token}), "page_token")


def test_1200_tag_filters_are_a_400(api: httpx.Client) -> None:
    params = [("tag_key", f"k{i}") for i in range(1200)]
    bad(api.get(TASKS, params=params), "tag_key", "limits.max_tag_filters")


def test_a_sweep_with_cpu_nan_is_a_400(api: httpx.Client) -> None:
    for value in ("nan", "inf", "-inf"):
        doc = {"template": task(), "params": [{"cpu": 1}, {"cpu": value}]}
        bad(api.post(BATCHES, json=doc), "params[1].cpu", "must be a number")


def test_non_finite_numbers_in_json_are_a_400(api: httpx.Client) -> None:
    # Python's JSON reader takes NaN and Infinity, which no response could carry back.
    for body in (
        b'{"template": {"executors": [{"image": "x", "command": ["true"]}]}, '
        b'"params": [{"cpu": Infinity}]}',
        b'{"template": {"executors": [{"image": "x", "command": ["true"]}]}, '
        b'"params": [{"x": NaN}]}',
    ):
        r = api.post(BATCHES, content=body, headers={"Content-Type": "application/json"})
        bad(r)
    body = (
        b'{"executors": [{"image": "x", "command": ["true"]}], "resources": {"ram_gb": Infinity}}'
    )
    bad(api.post(TASKS, content=body, headers={"Content-Type": "application/json"}), "ram_gb")


def test_a_nul_in_an_env_value_is_refused_at_creation(api: httpx.Client) -> None:
    doc = task()
    doc["executors"][0]["env"] = {"A": "x\x00y"}
    bad(api.post(TASKS, json=doc), "executors[0].env", "NUL")


def test_a_nul_in_a_command_argument_is_refused_at_creation(api: httpx.Client) -> None:
    doc = task()
    doc["executors"][0]["command"] = ["echo", "a\x00b"]
    bad(api.post(TASKS, json=doc), "executors[0].command[1]", "NUL")


def test_a_tiny_ram_gb_is_refused_with_the_minimum(api: httpx.Client) -> None:
    bad(api.post(TASKS, json=task(resources={"ram_gb": 1e-6})), "ram_gb", "6 MiB")


def test_an_endless_timeout_is_a_400(api: httpx.Client) -> None:
    endless = "9" * 400 + "s"
    doc = task(resources={"backend_parameters": {"timeout": endless}})
    bad(api.post(TASKS, json=doc), "timeout")
    bad(api.post(BATCHES, json={"tasks": [task()], "timeout": endless}), "timeout")


def test_a_batch_of_no_kind_or_two_kinds_is_a_400(api: httpx.Client) -> None:
    bad(api.post(BATCHES, json={"name": "x"}), "give exactly one of tasks, params")
    doc = {"tasks": [task()], "params": [{"a": 1}], "template": task()}
    bad(api.post(BATCHES, json=doc), "give exactly one of tasks, params")


# --- from tests/security/test_limits.py ---------------------------------------------


def test_a_body_over_the_default_limit_is_refused_before_it_is_parsed(api: httpx.Client) -> None:
    r = api.post(TASKS, json=task(name="n" * (17 * 1024 * 1024)))  # over 16 MiB
    assert r.status_code == 413, r.text[:300]
    assert "limits.max_body_bytes" in r.json()["detail"], r.text


def test_a_body_over_the_limit_is_refused_even_when_it_is_streamed(server: Server) -> None:
    server.config = {"limits": {"max_body_bytes": 65536}}
    with server.run() as http:
        big = task(name="n" * 100_000)
        r = http.post(TASKS, json=big)
        assert r.status_code == 413, r.text[:300]
        assert "limits.max_body_bytes" in r.json()["detail"], r.text

        def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer
            yield b'{"name": "'
            for _ in range(100):
                yield b"n" * 1000
            yield b'", "executors": [{"image": "x", "command": ["true"]}]}'

        r = http.post(TASKS, content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        assert "limits.max_body_bytes" in r.json()["detail"], r.text
        assert http.get("/api/v1/health").status_code == 200
        small = http.post(TASKS, json=task(name="small"))
        assert small.status_code == 200, small.text
        http.post(f"{TASKS}/{small.json()['id']}:cancel")


def _many(what: str) -> tuple[dict[str, Any], str]:
    doc = task()
    ex = doc["executors"][0]
    if what == "executors":
        doc["executors"] = [ex] * 101
    elif what == "inputs":
        doc["inputs"] = [{"path": f"/in/{i}", "content": "x"} for i in range(10_001)]
    elif what == "outputs":
        doc["outputs"] = [{"path": f"/o/{i}", "url": f"/tmp/o/{i}"} for i in range(10_001)]
    elif what == "volumes":
        doc["volumes"] = [f"/v/{i}" for i in range(257)]
    elif what == "tags":
        doc["tags"] = {f"k{i}": "v" for i in range(257)}
    elif what == "env":
        ex["env"] = {f"V{i}": "v" for i in range(1025)}
    elif what == "command":
        ex["command"] = ["true"] + ["x"] * 10_000
    elif what == "name":
        doc["name"] = "n" * 1025
    elif what == "tag_key":
        doc["tags"] = {"k" * 1025: "v"}
    elif what == "tag_value":
        doc["tags"] = {"k": "v" * 4097}
    elif what == "description":
        doc["description"] = "d" * (64 * 1024 + 1)
    setting = {
        "command": "max_command_words",
        "name": "max_name_length",
        "tag_key": "max_tag_key_length",
        "tag_value": "max_tag_value_length",
        "description": "max_description_length",
    }.get(what, f"max_{what}")
    return doc, setting


@pytest.mark.parametrize(
    "what",
    ["executors", "inputs", "outputs", "volumes", "tags", "env", "command", "name", "tag_key",
     "tag_value", "description"],
)  # fmt: skip
def test_counts_and_lengths_over_the_limit_are_refused_naming_it(
    api: httpx.Client, what: str
) -> None:
    doc, setting = _many(what)
    r = api.post(TASKS, json=doc)
    assert r.status_code == 400, r.text[:500]
    assert f"limits.{setting}" in r.json()["detail"], r.text[:500]
