"""Requests that made the server answer 500 (or accept a task that could only fail): each
is a 400 that says what is wrong.  Issue 12, item 13."""

from __future__ import annotations

import base64
from typing import Any

import httpx

TASKS = "/ga4gh/tes/v1/tasks"
BATCHES = "/api/v1/batches"


def task(**extra: Any) -> dict[str, Any]:
    return {"executors": [{"image": "localhost/toolship-busybox", "command": ["true"]}], **extra}


def bad(r: httpx.Response, *words: str) -> str:
    assert r.status_code == 400, (r.status_code, r.text)
    detail: str = r.json()["detail"]
    for word in words:
        assert word in detail, detail
    return detail


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
