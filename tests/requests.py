"""Request documents and refusal checks that the API and security tests share."""

from __future__ import annotations

from typing import Any

import httpx

TASKS = "/ga4gh/tes/v1/tasks"


def task(image: str = "localhost/toolship-busybox", **params: str) -> dict[str, Any]:
    """A one-executor task running ``true``, with these backend parameters."""
    doc: dict[str, Any] = {"executors": [{"image": image, "command": ["true"]}]}
    if params:
        doc["resources"] = {"backend_parameters": params}
    return doc


def refused(http: httpx.Client, doc: dict[str, Any], setting: str) -> str:
    """POST ``doc``: it must be a 400 that names ``setting`` (and, for policy, who may allow it)."""
    r = http.post(TASKS, json=doc)
    assert r.status_code == 400, r.text
    detail: str = r.json()["detail"]
    assert setting in detail, detail
    assert "operator may allow" in detail or "policy" not in setting, detail
    return detail
