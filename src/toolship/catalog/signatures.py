"""Offline signature verification through containers' signature policy (skopeo).

For an image ``REPO@DIGEST`` and the keys whose scope holds ``REPO`` (the longest
scope wins, as in ``containers-policy.json(5)``), a policy is written that rejects
everything except that repository signed by one key (``signedBy`` with a GPG key file,
or ``sigstoreSigned`` with a sigstore public key), and ``skopeo copy`` brings
``docker://REPO@DIGEST`` into this host's container storage under it: the signature is
checked before any layer is copied, and what lands in the storage, what tasks then run,
is what was verified.  Any one of the scope's keys suffices.  Signatures are found as
``registries.d`` says (a lookaside store for GPG signatures, sigstore attachments in
the registry); nothing leaves this host but the requests to the image's registry.

Debian 12's skopeo and podman (containers/image 5.23 built without sigstore) cannot
sign nor verify sigstore signatures: a ``sigstore_key`` there is refused with a message
that says so and to use a GPG key.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from toolship.config import SigningKey
from toolship.errors import InvalidRequest, RuntimeUnavailable
from toolship.services import Signature

__all__ = ["ImageRefused", "key_name", "keys_for", "verify"]

_TIMEOUT = 1800.0  # the copy brings the image's layers in
# containers/image reports a signature by a key it was not given as Go's dump of the
# gpgme.Signature (status 9: no public key); what a user needs of it is the signer.
_OTHER_SIGNER = re.compile(r'Invalid GPG signature: gpgme\.Signature\{.*?Fingerprint:\\?"(\w+)\\?"')


class ImageRefused(InvalidRequest):
    """The image may not run here: unsigned, signed by another key, or from a repository
    that no configured key covers.  The message names the key that was expected."""


def keys_for(repository: str, keys: Sequence[SigningKey]) -> list[SigningKey]:
    """The keys that must have signed ``repository``: those of the longest matching scope."""
    matching = [k for k in keys if repository == k.scope or repository.startswith(k.scope + "/")]
    if not matching:
        return []
    longest = max(len(k.scope) for k in matching)
    return [k for k in matching if len(k.scope) == longest]


def key_name(key: SigningKey) -> str:
    """How messages and records name a key: a GPG key's fingerprint, else its file."""
    if key.gpg_key is not None:
        fingerprints = _fingerprints(key.gpg_key)
        return ", ".join(fingerprints) if fingerprints else str(key.gpg_key)
    return str(key.sigstore_key)


def verify(
    repository: str,
    digest: str,
    keys: Sequence[SigningKey],
    *,
    registries_d: Path | None = None,
) -> Signature:
    """Verify that ``repository@digest`` is signed by one of the keys of its scope, and
    bring the verified image into this host's storage.

    Returns the ``Signature`` (verified, the key's name and kind).  Raises
    ``ImageRefused`` when no key covers the repository, the image is only local, it has
    no signature, or none of its signatures is by an expected key (the message names the
    expected keys and how to sign); ``RuntimeUnavailable`` when skopeo is missing or the
    copy fails for another reason (the registry is down, the disk is full).
    """
    candidates = keys_for(repository, keys)
    image = f"{repository}@{digest}"
    if not candidates:
        scopes = ", ".join(sorted({k.scope for k in keys}))
        raise ImageRefused(
            f"{image}: this server runs only signed images, and no signing key covers "
            f"{repository} (images.signed_by scopes: {scopes}); use an image from one of "
            "them, or ask the operator to add a key for its registry"
        )
    if repository.startswith("localhost/") or "/" not in repository:
        raise ImageRefused(
            f"{image} is only in this host's storage, and this server runs only images "
            f"signed by {_expected(candidates)}: push it to a registry and sign it there "
            f"({_how_to_sign(candidates[0], 'REGISTRY/NAME:TAG')})"
        )
    failures: list[str] = []
    for key in candidates:
        failure = _try(image, key, registries_d)
        if failure is None:
            kind = "gpg" if key.gpg_key is not None else "sigstore"
            name = key_name(key)
            return Signature(
                verified=True,
                key=name,
                kind=kind,
                message=f"signed by {kind} key {name} (scope {key.scope}), verified offline",
            )
        failures.append(failure)
    unsigned = all("no signature exists" in f for f in failures)
    what = "has no signature" if unsigned else "is not signed by an expected key"
    raise ImageRefused(
        f"{image} {what}: this server requires a signature by {_expected(candidates)} "
        f"({'; '.join(dict.fromkeys(failures))}); sign it with "
        f"{_how_to_sign(candidates[0], repository + ':TAG')}"
    )


def _expected(keys: Sequence[SigningKey]) -> str:
    names = [
        f"GPG key {key_name(k)} ({k.gpg_key})" if k.gpg_key else f"sigstore key {k.sigstore_key}"
        for k in keys
    ]
    return " or ".join(names)


def _how_to_sign(key: SigningKey, target: str) -> str:
    if key.gpg_key is not None:
        fingerprint = (_fingerprints(key.gpg_key) or ["FINGERPRINT"])[0]
        return f"skopeo copy --sign-by {fingerprint} docker://IMAGE docker://{target}"
    return f"skopeo copy --sign-by-sigstore-private-key KEY docker://IMAGE docker://{target}"


def _policy(repository: str, key: SigningKey) -> dict[str, object]:
    if key.gpg_key is not None:
        rule: dict[str, object] = {
            "type": "signedBy",
            "keyType": "GPGKeys",
            "keyPath": str(key.gpg_key.absolute()),
        }
    else:
        assert key.sigstore_key is not None  # SigningKey holds exactly one
        rule = {"type": "sigstoreSigned", "keyPath": str(key.sigstore_key.absolute())}
    return {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {repository: [rule]},
            # The destination: the host's own storage, where the verified image lands.
            "containers-storage": {"": [{"type": "insecureAcceptAnything"}]},
        },
    }


def _try(image: str, key: SigningKey, registries_d: Path | None) -> str | None:
    """None when ``image`` verifies with ``key`` (and is now in storage); else why not."""
    path = key.gpg_key or key.sigstore_key
    if path is None or not path.is_file():
        raise RuntimeUnavailable(
            f"signing key file {path} (images.signed_by, scope {key.scope}) does not exist; "
            "fix the server's settings"
        )
    repository = image.partition("@")[0]
    with tempfile.TemporaryDirectory(prefix="toolship-policy-") as tmp:
        policy = Path(tmp) / "policy.json"
        policy.write_text(json.dumps(_policy(repository, key)))
        argv = ["skopeo", "copy", "--quiet", "--policy", str(policy)]
        if registries_d is not None:
            argv += ["--registries.d", str(registries_d)]
        argv += [f"docker://{image}", f"containers-storage:{image}"]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=_TIMEOUT, check=False
            )
        except FileNotFoundError as exc:
            raise RuntimeUnavailable(
                "skopeo is not installed on the server: install it (scripts/setup-host.sh does)"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise RuntimeUnavailable(
                f"verifying {image} took over {_TIMEOUT:.0f} s; is its registry reachable?"
            ) from exc
    if done.returncode == 0:
        return None
    return _failure(done.stderr, image, key)


def _failure(stderr: str, image: str, key: SigningKey) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "no message"
    if 'msg="' in last:
        last = last.split('msg="', 1)[1].rsplit('"', 1)[0]
    if "sigstore disabled" in last:
        raise ImageRefused(
            f"{image}: this server is set to verify sigstore signatures with "
            f"{key.sigstore_key}, but its skopeo cannot (Debian builds it without sigstore); "
            "the operator should sign with GPG and set images.signed_by gpg_key instead"
        )
    if signer := _OTHER_SIGNER.search(last):
        return f"it is signed by GPG key {signer[1]}"
    if "Source image rejected" in last or "signature" in last.lower():
        return last.removeprefix("Source image rejected: ")
    raise RuntimeUnavailable(f"verifying the signature of {image} failed: {last}")


def _fingerprints(path: Path) -> list[str]:
    """The primary key fingerprints in a GPG key file (read without touching any keyring)."""
    with tempfile.TemporaryDirectory(prefix="toolship-gpg-") as home:
        try:
            done = subprocess.run(
                ["gpg", "--homedir", home, "--batch", "--with-colons", "--show-keys", str(path)],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
        except (FileNotFoundError, subprocess.TimeoutExpired):
            return []
    found: list[str] = []
    primary = False
    for line in done.stdout.splitlines():
        fields = line.split(":")
        if fields[0] in ("pub", "sub"):
            primary = fields[0] == "pub"
        elif fields[0] == "fpr" and primary and len(fields) > 9:
            found.append(fields[9])
            primary = False
    return found
