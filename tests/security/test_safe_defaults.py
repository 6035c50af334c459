"""Safe defaults of a shared server (issue 17): `toolship serve` on an address other hosts
reach refuses to start with no way to authenticate (no server.token_file, no users, no
OIDC issuer) unless told --insecure-no-auth; HTTPS from server.tls_cert_file/key_file.

What decides is checked in process (a database with or without users, certificates that
do not fit); acceptance 5, the flag and HTTPS through a real `toolship serve`.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import insert

from tests.integration.servers import free_port
from tests.security.shared import wait_healthy
from toolship.config import Settings
from toolship.db.schema import users
from toolship.db.store import make_engine, migrate
from toolship.errors import ConfigError
from toolship.server import require_authentication, tls_files

TASKS = "/ga4gh/tes/v1/tasks"
TOKEN = "safe-defaults-token"


def public(home: Path, **server: object) -> Settings:
    return Settings(home=home, server={"host": "0.0.0.0", **server})


def refusal(settings: Settings, tokens: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as refused:
        require_authentication(settings, tokens or [])
    return refused.value.message


def test_a_public_address_needs_a_way_to_authenticate_and_the_refusal_names_each(
    tmp_path: Path,
) -> None:
    message = refusal(public(tmp_path))
    for named in (
        "0.0.0.0",
        "server.token_file",
        "toolship user add",
        "access.oidc.issuer",
        "--insecure-no-auth",
        "server.allow_unauthenticated",
        "127.0.0.1",
    ):
        assert named in message, (named, message)


def test_tokens_an_issuer_or_loopback_are_enough(tmp_path: Path) -> None:
    require_authentication(public(tmp_path), [TOKEN])
    oidc = Settings(
        home=tmp_path, server={"host": "::"}, access={"oidc": {"issuer": "https://id.example"}}
    )
    require_authentication(oidc, [])
    for host in ("127.0.0.1", "localhost", "::1"):
        require_authentication(Settings(home=tmp_path, server={"host": host}), [])


def test_users_are_enough_even_when_all_are_disabled(tmp_path: Path) -> None:
    """The server asks every request for a token once it has users; disabled, none works."""
    settings = public(tmp_path)
    assert "toolship user add" in refusal(settings)
    engine = make_engine(settings.database_url)
    migrate(engine)
    with engine.begin() as conn:
        alice = {"name": "alice", "role": "user", "disabled": True, "created": "2025-01-01"}
        conn.execute(insert(users).values(**alice))
    engine.dispose()
    require_authentication(settings, [])


def test_the_operator_may_opt_out_and_is_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="toolship.server"):
        require_authentication(public(tmp_path, allow_unauthenticated=True), [])
    assert "without authentication" in caplog.text, caplog.text


# --- TLS --------------------------------------------------------------------------------


def certificate(folder: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "toolship test")])
    now = datetime.datetime.now(datetime.UTC)
    alt = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(alt, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def tls_refusal(home: Path, **server: object) -> str:
    with pytest.raises(ConfigError) as refused:
        tls_files(Settings(home=home, server=server).server)
    return refused.value.message


def test_tls_takes_a_certificate_and_its_key_and_says_what_is_wrong(tmp_path: Path) -> None:
    cert, key = certificate(tmp_path)
    _, other_key = certificate(tmp_path, "other")
    assert tls_files(Settings(home=tmp_path).server) is None
    both = Settings(home=tmp_path, server={"tls_cert_file": cert, "tls_key_file": key})
    assert tls_files(both.server) == (cert, key)
    for alone in ({"tls_cert_file": cert}, {"tls_key_file": key}):
        message = tls_refusal(tmp_path, **alone)
        assert "server.tls_cert_file and server.tls_key_file" in message and "both" in message
    missing = tls_refusal(tmp_path, tls_cert_file=tmp_path / "nope.crt", tls_key_file=key)
    assert "nope.crt" in missing, missing
    mismatched = tls_refusal(tmp_path, tls_cert_file=cert, tls_key_file=other_key)
    assert str(other_key) in mismatched and "not the key of" in mismatched, mismatched
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    bad = tls_refusal(tmp_path, tls_cert_file=garbage, tls_key_file=key)
    assert "PEM" in bad and str(garbage) in bad, bad
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        serialization.load_pem_private_key(key.read_bytes(), None).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    locked = tls_refusal(tmp_path, tls_cert_file=cert, tls_key_file=encrypted)
    assert "encrypted" in locked, locked


# --- through a real `toolship serve` ----------------------------------------------------


def serve(home: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOOLSHIP_")}
    environment.update(TOOLSHIP_HOME=str(home), **env)
    home.mkdir(parents=True, exist_ok=True)
    with (home / "server.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "toolship", "serve", *args],
            env=environment, stdout=log, stderr=log,
        )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def test_serve_on_a_public_address_without_authentication_exits_naming_the_ways(
    tmp_path: Path,
) -> None:
    """Acceptance 5."""
    home = tmp_path / "home"
    proc = serve(home, "--host", "0.0.0.0", "--port", str(free_port()))
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        stop(proc)
        raise AssertionError(
            "serve --host 0.0.0.0 started without authentication: "
            + (home / "server.log").read_text()
        ) from None
    text = (home / "server.log").read_text()
    print(text)
    assert code != 0
    for named in ("server.token_file", "toolship user add", "access.oidc.issuer"):
        assert named in text, (named, text)
    assert "--insecure-no-auth" in text and "Traceback" not in text, text
    assert "Running upgrade" not in text, text  # a refusal leaves the database as it was


def test_insecure_no_auth_serves_a_public_address_open_and_warns(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    proc = serve(home, "--host", "0.0.0.0", "--port", str(port), "--insecure-no-auth")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, home / "server.log")
        assert httpx.get(f"http://127.0.0.1:{port}{TASKS}").status_code == 200
    finally:
        stop(proc)
    assert "without authentication" in (home / "server.log").read_text()


def test_https_with_the_configured_certificate(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cert, key = certificate(tmp_path)
    (home / "tokens").write_text(TOKEN + "\n")
    port = free_port()
    config = tmp_path / "toolship.toml"
    config.write_text(
        f'[server]\nport = {port}\ntoken_file = "{home / "tokens"}"\n'
        f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\n'
    )
    proc = serve(home, "--config", str(config))
    url = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        log = home / "server.log"
        wait_healthy(url, proc, log, verify=trust)
        assert f"toolship serving on {url}" in log.read_text()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        listed = httpx.get(f"{url}{TASKS}", headers=headers, verify=trust)
        assert listed.status_code == 200, listed.text
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{url}/api/v1/health", verify=ssl.create_default_context())
        with pytest.raises(httpx.HTTPError):  # plain HTTP gets no answer
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health")
        environment = {k: v for k, v in os.environ.items() if not k.startswith("TOOLSHIP_")}
        cli = subprocess.run(
            [sys.executable, "-m", "toolship", "--server", url, "--token", TOKEN, "ps"],
            env={**environment, "SSL_CERT_FILE": str(cert)}, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
    finally:
        stop(proc)
