"""Per-task credentials are encrypted at rest and gone for real once the task ends."""

from __future__ import annotations

import base64
import secrets
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from toolship import Client, TaskState
from toolship.db import Store
from toolship.db.store import TaskRow
from toolship.states import TaskState as S


@pytest.fixture
def client(server: Any) -> Iterator[Client]:
    with Client(server.url, server.token, timeout=120) as c:
        yield c


def encodings(secret: str) -> list[bytes]:
    """The secret as bytes, and as it would look inside any base64 text (every alignment)."""
    raw = secret.encode()
    found = [raw]
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * pad + raw)
            found.append(text[4:-4])  # the part that does not depend on what surrounds it
    return found


def copies(home: Path, secret: str) -> list[str]:
    hits = []
    for name in ("toolship.db", "toolship.db-wal", "toolship.db-shm"):
        path = home / name
        data = path.read_bytes() if path.exists() else b""
        hits += [f"{name}: {enc[:12]!r}…" for enc in encodings(secret) if enc in data]
    return hits


def task_doc(image: str, command: list[str], secret: str) -> dict[str, Any]:
    return {
        "executors": [{"image": image, "command": command}],
        "resources": {
            "backend_parameters": {
                "webdav_username": "u",
                "webdav_password": secret,
                "s3_secret_access_key": secret[::-1],
            }
        },
    }


def test_a_secret_is_never_plaintext_on_disk_and_gone_after_the_wipe(
    home: Path, client: Client, busybox: str
) -> None:
    secret = secrets.token_urlsafe(48)
    task = client.create(task_doc(busybox, ["sh", "-c", "sleep 3"], secret))
    deadline = time.monotonic() + 60
    while task.state is not TaskState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.05)
    assert task.state is TaskState.RUNNING
    assert copies(home, secret) == [] and copies(home, secret[::-1]) == []
    with sqlite3.connect(home / "toolship.db") as db:
        (sealed,) = db.execute("select secrets from tasks where id = ?", (task.id,)).fetchone()
    assert task.wait(60) is TaskState.COMPLETE
    for _ in range(20):  # other tasks come and go; freed pages must never keep a copy
        client.run(busybox, ["true"])
    assert copies(home, secret) == [] and copies(home, secret[::-1]) == []
    kept = b"".join(p.read_bytes() for p in home.glob("toolship.db*"))
    assert sealed.encode()[:40] not in kept, "the sealed credentials outlived the wipe"
    assert stat.S_IMODE((home / "secrets.key").stat().st_mode) == 0o600


def _row(task_id: str, secrets_: dict[str, str]) -> TaskRow:
    return TaskRow(seq=0, id=task_id, state=S.QUEUED, name=None, creation_time="t", priority=0,
                   cpus=1, memory_gb=0.0, gpus=0, spec={}, secrets=secrets_)  # fmt: skip


def test_secrets_read_back_after_a_restart_and_only_with_the_key(tmp_path: Path) -> None:
    from toolship.db.sealing import Sealer

    url = f"sqlite:///{tmp_path / 'toolship.db'}"
    key = tmp_path / "secrets.key"
    store = Store.open(url, sealer=Sealer.from_file(key))
    store.insert_tasks([_row("t1", {"webdav_password": "hunter2"}), _row("t2", {})])
    assert store.get("t1").secrets == {}  # reads never decrypt
    store.close()
    store = Store.open(url, sealer=Sealer.from_file(key))
    assert store.secrets("t1") == {"webdav_password": "hunter2"}
    assert store.secrets("t2") == {}
    store.close()
    key.unlink()
    store = Store.open(url, sealer=Sealer.from_file(key))  # a new key cannot read them
    assert store.secrets("t1") == {}
    store.close()


def test_plaintext_secrets_of_an_older_database_are_sealed_at_start(tmp_path: Path) -> None:
    from toolship.db.sealing import Sealer

    url = f"sqlite:///{tmp_path / 'toolship.db'}"
    store = Store.open(url, sealer=Sealer.from_file(tmp_path / "secrets.key"))
    store.insert_tasks([_row("t1", {})])
    with store.engine.begin() as conn:  # what an older toolship wrote
        conn.exec_driver_sql(
            "update tasks set secrets = '{\"webdav_password\": \"oldplain\"}' where id = 't1'"
        )
    store.close()
    store = Store.open(url, sealer=Sealer.from_file(tmp_path / "secrets.key"))
    assert store.secrets("t1") == {"webdav_password": "oldplain"}
    store.close()
    assert b"oldplain" not in (tmp_path / "toolship.db").read_bytes()
