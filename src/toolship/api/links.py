"""OpenAPI links: which answer names the thing that other operations then take.

A link says "the ``id`` in CreateTask's answer is GetTask's ``id``"; a client generator can
follow it, and schemathesis' stateful phase chains real calls with it (create a task, then
read, wait for, cancel and rerun that very task) instead of guessing ids that 404.  The
links are drawn from one table of resources (who makes one, who takes one), so a new route
that takes a task id is one line here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RESOURCES", "Resource", "add_links"]


@dataclass(frozen=True, slots=True)
class Resource:
    """A thing one answer names and other operations act on.

    ``made_by``: each (operationId, status code) whose answer names one, with where each
    of its keys is in that answer (a JSON pointer into the body).  ``used_by``: each
    operationId that takes one, with the parameter each key it needs goes to.
    """

    made_by: Mapping[tuple[str, str], Mapping[str, str]]
    used_by: Mapping[str, Mapping[str, str]]


_ID = {"id": "/id"}
_BY_ID = {"id": "id"}
_SERVICE = {"name": "/name", "version": "/version"}
_DIGEST = {"digest": "/digest"}
_NAME = {"name": "name"}
_NAME_VERSION = {"name": "name", "version": "version"}
_TOOL = {"name": "id"}  # TRS calls a service a tool, and its name the tool's id
_TOOL_VERSION = {"name": "id", "version": "version_id"}

RESOURCES: Mapping[str, Resource] = {
    "task": Resource(
        made_by={
            ("CreateTask", "200"): _ID,
            ("RunService", "200"): _ID,
            ("RerunTask", "200"): _ID,
            ("CreateBatch", "200"): {"id": "/task_ids/0"},
        },
        used_by={
            "GetTask": _BY_ID,
            "CancelTask": _BY_ID,
            "TaskDetails": _BY_ID,
            "WaitTask": _BY_ID,
            "TaskLogs": _BY_ID,
            "TaskOutput": _BY_ID,
            "GetTaskSbom": _BY_ID,
            "RerunTask": _BY_ID,
            "VerifyRerun": _BY_ID,
            "GetProvenance": {"id": "task_id"},
            "GetTaskCrate": {"id": "task_id"},
        },
    ),
    "batch": Resource(
        made_by={("CreateBatch", "200"): _ID},
        used_by={
            "GetBatch": _BY_ID,
            "CancelBatch": _BY_ID,
            "BatchReport": _BY_ID,
            "GetBatchCrate": {"id": "batch_id"},
        },
    ),
    "service": Resource(
        made_by={("RegisterService", "201"): _SERVICE, ("RegisterService", "200"): _SERVICE},
        used_by={
            "GetService": _NAME,
            "GetServiceVersion": _NAME_VERSION,
            "DeprecateServiceVersion": _NAME_VERSION,
            "RunService": _NAME,
            "toolsIdGet": _TOOL,
            "toolsIdVersionsGet": _TOOL,
            "toolsIdVersionsVersionIdGet": _TOOL_VERSION,
            "toolsIdVersionsVersionIdContainerfileGet": _TOOL_VERSION,
        },
    ),
    "build": Resource(
        made_by={("BuildService", "202"): _ID},
        used_by={"GetBuild": _BY_ID, "BuildLog": _BY_ID},
    ),
    "sbom": Resource(
        made_by={("MakeSbom", "201"): _DIGEST, ("MakeSbom", "200"): _DIGEST},
        used_by={"GetSbom": {"digest": "digest"}, "GetSbomInfo": {"digest": "digest"}},
    ),
    "user": Resource(
        made_by={("AddUser", "200"): {"name": "/user/name"}},
        used_by={"GetUser": _NAME, "DisableUser": _NAME, "EnableUser": _NAME, "NewToken": _NAME},
    ),
    "token": Resource(
        made_by={("AddUser", "200"): {"id": "/token/id"}, ("NewToken", "200"): {"id": "/token/id"}},
        used_by={"RevokeToken": _BY_ID},
    ),
}


def add_links(schema: dict[str, Any], resources: Mapping[str, Resource] = RESOURCES) -> None:
    """Add each resource's links to the responses of ``schema`` that make one.

    A name the document lacks (an operationId, a status code, a target's parameter) is a
    stale table: it raises, so the document never ships a link that leads nowhere.
    """
    operations = {
        op["operationId"]: op
        for item in schema.get("paths", {}).values()
        for op in item.values()
        if "operationId" in op
    }
    for what, resource in resources.items():
        for (source, status), keys in resource.made_by.items():
            response = _operation(operations, source, what)["responses"].get(status)
            if response is None:
                raise ValueError(f"{what} link: {source} has no {status} response")
            links = response.setdefault("links", {})
            for target, params in resource.used_by.items():
                _check_parameters(_operation(operations, target, what), target, params.values())
                links[target] = {
                    "operationId": target,
                    "parameters": {p: f"$response.body#{keys[k]}" for k, p in params.items()},
                }


def _operation(operations: Mapping[str, Any], name: str, what: str) -> Any:
    if name not in operations:
        raise ValueError(f"{what} link: no operation {name!r} in the document")
    return operations[name]


def _check_parameters(operation: Mapping[str, Any], name: str, wanted: Any) -> None:
    have = {p["name"] for p in operation.get("parameters", [])}
    for param in wanted:
        if param not in have:
            raise ValueError(f"link to {name}: it has no parameter {param!r} ({sorted(have)})")
