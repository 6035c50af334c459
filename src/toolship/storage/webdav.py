"""``webdav://`` (over http) and ``webdavs://`` (over https): Nextcloud, B2DROP, ownCloud …

Through webdav4.  The URL names the host, so the egress policy applies (every
connection goes through :func:`~toolship.storage.egress.httpx_transport`).  A task's
own ``webdav_username``/``webdav_password`` win; else the server's credential for the
URL's prefix, and none at all for any other host.  Uploads are spooled by webdav4
and sent whole on close, into parents made first (WebDAV has real directories, so
the empty ones of a DIRECTORY output are made too).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from toolship.errors import InvalidRequest
from toolship.storage.egress import httpx_transport
from toolship.storage.remote import RemoteStorage, Upload

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = ["WebdavStorage"]


class WebdavStorage(RemoteStorage):
    """webdav:// (over http) and webdavs:// (over https): Nextcloud, B2DROP, ownCloud …"""

    schemes: tuple[str, ...] = ("webdav", "webdavs")
    names_hosts = True

    def scoped(self, url: str, credentials: Mapping[str, str]) -> Mapping[str, str]:
        if credentials.get("webdav_username"):
            return credentials  # the task's own: it sends them where it likes
        server = self.settings.credential_for(url)
        if server is None:
            return {}
        return {"webdav_username": server.username, "webdav_password": server.password}

    def fs_key(self, url: str, credentials: Mapping[str, str]) -> Hashable:
        parts = urlsplit(url)
        user = (credentials.get("webdav_username"), credentials.get("webdav_password"))
        return (parts.scheme, parts.netloc, user)

    def path(self, url: str) -> str:
        return urlsplit(url).path.rstrip("/") or "/"

    def url_of(self, url: str, path: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}/{path.lstrip('/')}"

    def make_filesystem(self, url: str, credentials: Mapping[str, str]) -> AbstractFileSystem:
        from webdav4.fsspec import WebdavFileSystem

        parts = urlsplit(url)
        base = f"{'https' if parts.scheme == 'webdavs' else 'http'}://{parts.netloc}"
        user = credentials.get("webdav_username")
        auth = (user, credentials.get("webdav_password") or "") if user else None
        fs: AbstractFileSystem = WebdavFileSystem(
            base, auth=auth, transport=httpx_transport(self.egress)
        )
        return fs

    def writer_class(self) -> type[Upload]:
        """webdav4's spooled upload, not fsspec's buffered writer; ``discard`` drops it."""
        from webdav4.fsspec import UploadFile

        spooled: type[Upload] = UploadFile
        return spooled

    def check_input(self, url: str, kind: str) -> None:
        if not urlsplit(url).netloc:
            raise InvalidRequest(f"{url!r}: write webdav://HOST[:PORT]/path")
        self.check_egress(url)

    def make_directory(
        self, fs: AbstractFileSystem, path: str, credentials: Mapping[str, str]
    ) -> bool:
        fs.makedirs(path, exist_ok=True)  # MKCOL, parents first
        return True

    def prepare_parent(self, fs: AbstractFileSystem, path: str) -> None:
        parent = path.rsplit("/", 1)[0]
        if parent and parent != "/":
            fs.makedirs(parent, exist_ok=True)
