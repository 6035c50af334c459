"""What every CLI command shares: how to reach the server."""

from __future__ import annotations

from dataclasses import dataclass, field

from toolship.client import Client

__all__ = ["Ctx"]


@dataclass
class Ctx:
    server: str | None
    token: str | None
    _client: Client | None = field(default=None, repr=False)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.server, self.token)
        return self._client
