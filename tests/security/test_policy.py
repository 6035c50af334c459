"""Features only an operator may turn on, where it takes the real thing: the process
runtime the operator allowed runs on the host, multi-node Slurm tasks need the host
network setting, and `toolship serve` refuses to serve a public address without tokens.

Issue 12, item 8 (a client ran host commands as root) and acceptance point 4.  What a
shared server refuses at admission (400s naming the setting) is an API contract test, in
process: tests/api/test_policy.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.integration.servers import free_port
from tests.requests import refused, task
from tests.security.shared import shared_server, wait_healthy

TASKS = "/ga4gh/tes/v1/tasks"


def wait_final(http: httpx.Client, task_id: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state: str = http.get(f"{TASKS}/{task_id}").json()["state"]
        if state in ("COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish within {timeout:.0f}s")


def test_the_operator_can_allow_the_process_runtime(tmp_path: Path) -> None:
    config = '[policy]\nruntimes = ["podman", "process"]\n'
    with shared_server(tmp_path, config) as srv, srv.client() as http:
        doc = task("unused", runtime="process")
        doc["executors"][0]["command"] = ["sh", "-c", "echo on the host"]
        r = http.post(TASKS, json=doc)
        assert r.status_code == 200, r.text
        assert wait_final(http, r.json()["id"]) == "COMPLETE", http.get(
            f"{TASKS}/{r.json()['id']}", params={"view": "FULL"}
        ).text


def test_multi_node_on_slurm_needs_the_host_network_setting(
    tmp_path: Path, slurm_cluster: Path
) -> None:
    env = {"SLURM_CONF": str(slurm_cluster), "TOOLSHIP_BACKEND": "slurm"}
    with shared_server(tmp_path / "a", env=env) as srv, srv.client() as http:
        detail = refused(http, task(nodes="2"), "policy.host_network")
        assert "nodes=2" in detail, detail
    config = "[policy]\nhost_network = true\n"
    with shared_server(tmp_path / "b", config, env=env) as srv, srv.client() as http:
        r = http.post(TASKS, json=task(nodes="2"))
        assert r.status_code == 200, r.text
        http.post(f"{TASKS}/{r.json()['id']}:cancel")
        assert wait_final(http, r.json()["id"]) == "CANCELED"


def _serve(home: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOOLSHIP_")}
    environment.update(TOOLSHIP_HOME=str(home), **env)
    with (home / "server.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "toolship", "serve", "--host", "0.0.0.0", "--port", str(port)],
            env=environment, stdout=log, stderr=log,
        )  # fmt: skip


def test_serving_a_public_address_without_tokens_refuses_to_start(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    proc = _serve(home, free_port())
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        raise AssertionError(
            "toolship serve --host 0.0.0.0 started without tokens: "
            + (home / "server.log").read_text()
        ) from None
    text = (home / "server.log").read_text()
    assert code != 0
    assert "server.token_file" in text and "server.allow_unauthenticated" in text, text


def test_the_operator_can_opt_out_of_authentication_explicitly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    proc = _serve(home, port, TOOLSHIP_SERVER__ALLOW_UNAUTHENTICATED="true")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, home / "server.log")
    finally:
        proc.terminate()
        proc.wait(30)
