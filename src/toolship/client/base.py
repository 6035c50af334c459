"""The SDK's plumbing: one httpx client for one server, and error replies as exceptions.

Every request of :class:`toolship.client.Client` goes through :meth:`BaseClient._send`
(or :meth:`BaseClient._stream` for a log), so a status code becomes the same
:class:`toolship.ToolshipError` everywhere and an unreachable server always says where
it looked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Self, TypeVar

import httpx
from pydantic import BaseModel

from toolship.errors import BY_STATUS, ServerUnavailable, ToolshipError
from toolship.models import REPLY

TES = "/ga4gh/tes/v1"
M = TypeVar("M", bound=BaseModel)
Query = Mapping[str, str | int | float | bool | Sequence[str]]


class BaseClient:
    """The connection :class:`toolship.client.Client` is built on: where the server is,
    its token, and how one request goes and comes back typed."""

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        server = server or os.environ.get("TOOLSHIP_SERVER") or None
        token = token or os.environ.get("TOOLSHIP_TOKEN") or None
        if server is None:
            from toolship.embedded import ensure_server

            embedded = ensure_server()
            server, token = embedded.url, token or embedded.token
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=self.server, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Query | None = None,
        json: object = None,
        timeout: float | None = None,
        files: Mapping[str, tuple[str, IO[bytes], str]] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request; an error status raises the matching :class:`ToolshipError`."""
        try:
            response = self.http.request(
                method,
                path,
                params=params,
                json=json,
                files=files,
                data=data,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"cannot reach toolship at {self.server}: {exc}") from exc
        _raise_for(response)
        return response

    def _read(
        self,
        model: type[M],
        method: str,
        path: str,
        *,
        params: Query | None = None,
        json: object = None,
        timeout: float | None = None,
        files: Mapping[str, tuple[str, IO[bytes], str]] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> M:
        """One request, its answer read into ``model``."""
        response = self._send(
            method, path, params=params, json=json, timeout=timeout, files=files, data=data
        )
        return model.model_validate_json(response.content, context=REPLY)

    def _stream(self, path: str, params: Mapping[str, str | int | bool]) -> Iterator[bytes]:
        """A streamed GET's raw bytes as they come (no timeout: a log may pause long)."""
        try:
            with self.http.stream("GET", path, params=params, timeout=None) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response)
                yield from response.iter_bytes()
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"cannot reach toolship at {self.server}: {exc}") from exc


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    if response.status_code in (502, 504):  # toolship answers neither: a proxy in front
        raise ServerUnavailable(
            f"the proxy in front of toolship at {response.request.url.host} answered "
            f"{response.status_code} {response.reason_phrase}: the server behind it did not "
            "answer, or stopped while answering (a replica restarting?). Try again; a "
            "request that creates tasks may have been stored before its answer was lost, "
            "so look for them (by name or tag) before sending it again"
        )
    try:
        detail = response.json().get("detail") or response.text
    except ValueError:
        detail = response.text
    cls = BY_STATUS.get(response.status_code, ToolshipError)
    raise cls(str(detail))
