"""Running the HTTP server process (``toolship serve``)."""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
from pathlib import Path

import uvicorn

from toolship.api import create_app
from toolship.config import ServerSettings, ServerState, Settings, state_file, token_file
from toolship.db.users import has_users
from toolship.errors import ConfigError
from toolship.secrets import ensure_token_file, read_tokens
from toolship.storage.egress import is_loopback_host
from toolship.web import install as install_ui

__all__ = ["reachable", "require_authentication", "serve", "tls_files"]

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


def require_authentication(settings: Settings, tokens: list[str]) -> None:
    """Refuse to serve an address other hosts reach when nobody would have to authenticate.

    Server tokens, users of the server's own (their tokens) and an OIDC issuer each make
    every request show a credential; loopback is the operator's own machine.
    """
    host = settings.server.host
    if tokens or is_loopback_host(host) or settings.access.oidc.issuer:
        return
    if has_users(settings.database_url):
        return
    if not settings.server.allow_unauthenticated:
        raise ConfigError(
            f"refusing to serve on {host} without authentication: anyone who can reach "
            "that address could run tasks. Give the server a way to authenticate: "
            "server.token_file (a file of bearer tokens, one a line), users with tokens "
            "of their own (`toolship user add NAME`, run while it listens on 127.0.0.1 or "
            "with a token of server.token_file), or OIDC (access.oidc.issuer); or listen "
            "on 127.0.0.1. If a proxy in front authenticates every request, start it "
            "with --insecure-no-auth (server.allow_unauthenticated = true)"
        )
    log.warning(
        "serving on %s without authentication (--insecure-no-auth, "
        "server.allow_unauthenticated): anyone who reaches it may run tasks",
        host,
    )


def tls_files(server: ServerSettings) -> tuple[Path, Path] | None:
    """The certificate chain and key to serve HTTPS with (checked now), or None: HTTP."""
    cert, key = server.tls_cert_file, server.tls_key_file
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError(
            "server.tls_cert_file and server.tls_key_file go together: set both (the "
            "certificate chain and its private key, PEM files) to serve HTTPS, or neither "
            "to serve HTTP"
        )
    asked: list[bool] = []

    def password() -> bytes:  # never a prompt on the terminal of a server
        asked.append(True)
        return b""

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key, password)
    except ssl.SSLError as exc:
        if asked:
            problem = (
                f"server.tls_key_file {key} is encrypted; give the server an unencrypted "
                "key, readable only by the server's user"
            )
        elif "KEY_VALUES_MISMATCH" in str(exc):
            problem = f"server.tls_key_file {key} is not the key of server.tls_cert_file {cert}"
        else:
            problem = (
                f"server.tls_cert_file {cert} and server.tls_key_file {key} are not a PEM "
                f"certificate chain and its private key ({exc.reason or exc})"
            )
        raise ConfigError(f"cannot serve HTTPS: {problem}") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot serve HTTPS: cannot read {exc.filename or f'{cert} or {key}'} "
            f"({exc.strerror}); check server.tls_cert_file and server.tls_key_file"
        ) from None
    return cert, key


def _url(scheme: str, host: str, port: int) -> str:
    """``scheme://host:port``, an IPv6 address in brackets."""
    return f"{scheme}://{host if ':' not in host else f'[{host}]'}:{port}"


def reachable(settings: Settings, scheme: str, host: str, port: int) -> Settings:
    """Settings that say how others reach this server, where they leave it to the address
    it listens on: other replicas (``server.advertise_url``) and, by default, the Slurm
    jobs' workers (``slurm.server_url``).  A wildcard address is no place to connect to."""
    server, slurm = settings.server, settings.slurm
    if not server.advertise_url:
        wildcard = host in ("0.0.0.0", "::")  # noqa: S104
        reach = socket.gethostname() if wildcard else host
        server = server.model_copy(update={"advertise_url": _url(scheme, reach, port)})
    if not slurm.server_url:
        slurm = slurm.model_copy(update={"server_url": server.advertise_url})
    return settings.model_copy(update={"server": server, "slurm": slurm})


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
    require_authentication(settings, tokens)
    # The embedded server listens on loopback for its own CLI, which trusts no private CA.
    tls = None if embedded else tls_files(settings.server)
    scheme = "https" if tls else "http"
    sock = _bind(settings.server.host, settings.server.port)
    host, port = sock.getsockname()[:2]
    url = _url(scheme, host, port)
    settings = reachable(settings, scheme, host, port)
    # The egress default depends on the kind of server; resolved once, it travels to workers.
    storage = settings.storage.for_server(embedded=embedded)
    settings = settings.model_copy(update={"storage": storage})
    app = create_app(settings, tokens=tokens, embedded=embedded)
    install_ui(app, settings)  # the web UI under /ui
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
        lifespan="on",
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
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
