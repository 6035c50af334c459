"""Running the HTTP server process (``toolship serve``)."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket

import uvicorn

from toolship.api import create_app
from toolship.config import ServerState, Settings, state_file, token_file
from toolship.errors import ConfigError
from toolship.secrets import ensure_token_file, read_tokens

__all__ = ["serve"]

log = logging.getLogger(__name__)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this: without it a keep-alive response written in two
    # parts waits ~40 ms for the client's delayed ACK (Nagle).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port"
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def serve(settings: Settings, *, embedded: bool = False) -> None:
    """Serve until SIGINT/SIGTERM.  Running executors survive and are resumed next start."""
    settings.home.mkdir(parents=True, exist_ok=True)
    tokens: list[str] = []
    if embedded:
        tokens = [ensure_token_file(token_file(settings.home))]
    elif settings.server.token_file is not None:
        if not settings.server.token_file.is_file():
            raise ConfigError(f"server.token_file {settings.server.token_file} does not exist")
        tokens = read_tokens(settings.server.token_file)
    if not tokens and not _loopback(settings.server.host):
        if not settings.server.allow_unauthenticated:
            raise ConfigError(
                f"refusing to serve on {settings.server.host} without authentication: anyone "
                "who can reach that address could run tasks. Set server.token_file (a file "
                "of bearer tokens, one a line), listen on 127.0.0.1, or set "
                "server.allow_unauthenticated = true if a proxy in front authenticates"
            )
        log.warning(
            "serving on %s without authentication (server.allow_unauthenticated)",
            settings.server.host,
        )
    sock = _bind(settings.server.host, settings.server.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    if settings.backend == "slurm" and not settings.slurm.server_url:
        # Compute nodes report here; a wildcard address is no place to connect to.
        wildcard = host in ("0.0.0.0", "::")  # noqa: S104
        reach = socket.gethostname() if wildcard else host
        reach_url = f"http://{reach if ':' not in reach else f'[{reach}]'}:{port}"
        settings = settings.model_copy(
            update={"slurm": settings.slurm.model_copy(update={"server_url": reach_url})}
        )
    # The egress default depends on the kind of server; resolved once, it travels to workers.
    storage = settings.storage.for_server(embedded=embedded)
    settings = settings.model_copy(update={"storage": storage})
    app = create_app(settings, tokens=tokens, embedded=embedded)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=3, lifespan="on"
    )
    server = uvicorn.Server(config)
    state = state_file(settings.home)
    if embedded:
        tmp = state.with_suffix(".tmp")
        info = ServerState(url=url, pid=os.getpid(), token_file=str(token_file(settings.home)))
        tmp.write_text(json.dumps(info))
        tmp.replace(state)
    print(f"toolship serving on {url} (home {settings.home})", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        if embedded and state.exists():
            try:
                if json.loads(state.read_text()).get("pid") == os.getpid():
                    state.unlink()
            except (OSError, ValueError):
                pass
