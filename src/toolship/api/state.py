"""What every route needs, hung on the app: settings, store, engine, storage."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from toolship.catalog.builds import Builds
from toolship.catalog.catalog import Catalog
from toolship.config import Settings
from toolship.db import Store
from toolship.db.catalog import CatalogStore
from toolship.db.events import EventLog
from toolship.db.users import UserStore
from toolship.engine.engine import Engine
from toolship.provenance.sboms import Sboms
from toolship.storage import StorageRegistry

__all__ = ["AppState", "app_state"]


@dataclass
class AppState:
    settings: Settings
    store: Store
    engine: Engine
    storage: StorageRegistry
    catalog: CatalogStore
    services: Catalog
    builds: Builds
    users: UserStore  # users and their tokens (api/users.py)
    events: EventLog  # who did what (api/events.py)
    embedded: bool = False
    sboms: Sboms | None = None  # one SBOM per image digest (provenance.sboms)


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.toolship
    return state
