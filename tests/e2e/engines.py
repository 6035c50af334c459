"""What a workflow engine's test reads back from the server, and says when the run failed."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx

TES = "/ga4gh/tes/v1"


def all_tasks(server: Any) -> list[dict[str, Any]]:
    """Every task on the server, in the FULL view."""
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    ) as api:
        listed = api.get(f"{TES}/tasks", params={"view": "MINIMAL"}).json()["tasks"]
        full: list[dict[str, Any]] = [
            api.get(f"{TES}/tasks/{t['id']}", params={"view": "FULL"}).json() for t in listed
        ]
    return full


def explain(
    engine: str, proc: subprocess.CompletedProcess[str], tasks: list[dict[str, Any]]
) -> str:
    """The engine's exit and output, and each unfinished task's logs."""
    lines = [f"{engine} exited {proc.returncode}; its output ends:", proc.stdout[-4000:]]
    for task in tasks:
        if task["state"] != "COMPLETE":
            lines.append(f"task {task['id']} ({task.get('name')}) is {task['state']}:")
            for attempt in task.get("logs") or []:
                for log in attempt.get("logs") or []:
                    lines.append(f"  exit {log.get('exit_code')}; stderr ends:")
                    lines.append((log.get("stderr") or "")[-2000:])
                lines += [f"  system: {s}" for s in attempt.get("system_logs") or []]
    return "\n".join(lines)
