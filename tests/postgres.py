"""PostgreSQL for the tests: the server ``scripts/postgres.sh`` runs, a database per test.

Each test that runs on PostgreSQL gets a database of its own, copied from a template that
was migrated once per test process (a copy takes a few milliseconds; migrating takes a
second), and dropped when the test ends, whatever is still connected to it.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.conftest import require
from toolship.db.store import make_engine, migrate

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "postgres.sh"


class Databases:
    """Fresh databases on one PostgreSQL server (``url``: the database the script made)."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.template = f"toolship_template_{os.getpid()}"
        self._ready = False

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        u = self.url
        return psycopg.connect(
            host=u.host, port=u.port, user=u.username, password=u.password,
            dbname="postgres", autocommit=True,
        )  # fmt: skip

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def _make_template(self) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.template}"')
        engine = make_engine(self.url_of(self.template))
        try:
            migrate(engine)
        finally:
            engine.dispose()  # a template may have no one connected while it is copied
        self._ready = True

    def fresh(self) -> str:
        """The URL of a new, migrated, empty database."""
        if not self._ready:
            self._make_template()
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return self.url_of(name)

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        if self._ready:
            with self._admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')


def databases() -> Databases:
    """The server ``scripts/postgres.sh`` started; a missing server fails the test."""
    status = subprocess.run(
        [str(SCRIPT), "status"], capture_output=True, text=True, timeout=60, check=False
    )
    require(
        status.returncode == 0,
        "PostgreSQL (for the tests that run on it)",
        "run scripts/postgres.sh start (scripts/test.sh starts it)",
    )
    return Databases(status.stdout.strip().removeprefix("postgres ready: "))
