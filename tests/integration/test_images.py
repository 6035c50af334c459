"""The catalog's image tools against real podman, skopeo, the loopback registry and GPG keys."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import GpgKey, make_gpg_key, unique_name
from toolship.catalog import images, signatures
from toolship.catalog.images import BuildFailed, ImageFacts, ImageNotFound
from toolship.catalog.signatures import ImageRefused
from toolship.config import ImageSettings, SigningKey
from toolship.errors import InvalidRequest

GEF_LABELS = """\
LABEL "eudat.gef.service.name"="Clone" \\
      "eudat.gef.service.version"="1.0" \\
      "eudat.gef.service.input.1.name"="Input Directory" \\
      "eudat.gef.service.input.1.path"="/root/input"
"""


def _podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=120, check=check
    )


@pytest.fixture
def tags(busybox: str) -> Iterator[list[str]]:
    """Local image names a test made, removed after it (the registry keeps its copies)."""
    made: list[str] = []
    yield made
    if made:
        _podman("rmi", "--force", "--ignore", *made, check=False)


def _build(
    tmp_path: Path, busybox: str, tags: list[str], body: str, name: str = "img"
) -> tuple[ImageFacts, bytes]:
    context = tmp_path / unique_name(name)
    context.mkdir()
    (context / "Containerfile").write_text(f"FROM {busybox}\n{body}")
    tag = f"localhost/{unique_name(name)}:1"
    tags.append(tag)
    log: list[bytes] = []
    facts = images.build(context, file=None, tag=tag, network=False, log=log.append)
    return facts, b"".join(log)


def test_build_streams_its_log_and_the_image_runs_by_digest(
    tmp_path: Path, busybox: str, tags: list[str]
) -> None:
    facts, log = _build(
        tmp_path, busybox, tags,
        f'{GEF_LABELS}RUN echo built-by-run > /built\nCMD ["cat", "/built"]\n',
    )  # fmt: skip
    assert b"STEP 3/4: RUN echo built-by-run" in log
    assert facts.repository == facts.reference.rpartition(":")[0]
    assert facts.repository.startswith("localhost/")
    assert facts.digest.startswith("sha256:") and facts.image_id.startswith("sha256:")
    assert facts.labels["eudat.gef.service.input.1.path"] == "/root/input"
    assert facts.cmd == ["cat", "/built"]
    assert facts.size and facts.size > 0
    assert facts.source == "build"
    # The pinned reference is what a task runs; it is found locally, without a registry.
    again = images.inspect(facts.image)
    assert (again.digest, again.image_id, again.repository) == (
        facts.digest, facts.image_id, facts.repository,
    )  # fmt: skip
    ran = _podman("run", "--rm", "--network", "none", facts.image)
    assert ran.stdout == "built-by-run\n"
    other = f"localhost/{unique_name('retagged')}:2"
    tags.append(other)
    moved = images.retag(facts, other)
    assert (moved.repository, moved.digest) == (other.rpartition(":")[0], facts.digest)
    assert images.inspect(other).image_id == facts.image_id


def test_a_failing_step_is_named_and_its_output_is_in_the_log(
    tmp_path: Path, busybox: str, tags: list[str]
) -> None:
    body = "RUN echo first-ok\nRUN echo about-to-fail; echo to-stderr >&2; exit 3\nCMD true\n"
    with pytest.raises(BuildFailed) as caught:
        _build(tmp_path, busybox, tags, body)
    message = caught.value.message
    assert "STEP 3/4: RUN echo about-to-fail" in message
    assert "exit status 3" in message
    assert caught.value.status_code == 400


def test_builds_are_offline_unless_asked(
    tmp_path: Path, busybox: str, registry: str, tags: list[str]
) -> None:
    # No network in RUN: not even the host's loopback registry is reachable.
    host, port = registry.split(":")
    probe = f"RUN nc -w 2 {host} {port} </dev/null && echo REACHED || echo NO-NETWORK\n"
    _, log = _build(tmp_path, busybox, tags, probe)
    assert b"\nNO-NETWORK\n" in log and b"\nREACHED\n" not in log
    # And no base image is pulled: a FROM that is not local fails at once.
    context = tmp_path / "remote-base"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM docker.io/library/toolship-not-here:1\n")
    with pytest.raises(BuildFailed, match=r"STEP 1/1: FROM .*image not known"):
        images.build(context, file=None, tag="localhost/never-built", network=False,
                     log=lambda _: None)  # fmt: skip


def test_the_containerfile_must_be_in_the_context(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (tmp_path / "outside").write_text("FROM scratch\n")
    with pytest.raises(InvalidRequest, match="has no Containerfile or Dockerfile"):
        images.build(context, file=None, tag="localhost/x", network=False, log=print)
    with pytest.raises(InvalidRequest, match="outside the build context"):
        images.build(context, file="../outside", tag="localhost/x", network=False, log=print)


def test_push_then_inspect_and_resolve_in_the_registry(
    tmp_path: Path, busybox: str, registry: str, tags: list[str]
) -> None:
    facts, _ = _build(tmp_path, busybox, tags, f'{GEF_LABELS}CMD ["echo", "one"]\n', "pushed")
    pushed = images.push(facts, f"{registry}/toolship")
    name = facts.reference.split("/", 1)[1]
    assert pushed.reference == f"{registry}/toolship/{name}"
    assert pushed.repository == f"{registry}/toolship/{name.rpartition(':')[0]}"
    assert pushed.digest.startswith("sha256:")
    remote = images.inspect(pushed.reference)
    assert remote.source == "registry"
    assert (remote.repository, remote.digest, remote.image_id) == (
        pushed.repository, pushed.digest, facts.image_id,
    )  # fmt: skip
    assert remote.labels["eudat.gef.service.name"] == "Clone"
    assert remote.cmd == ["echo", "one"]
    assert remote.size and remote.size > 0
    assert images.inspect(pushed.image).digest == pushed.digest
    assert images.resolve(pushed.reference) == (pushed.repository, pushed.digest)

    # The tag moves: resolving it gives the new digest; the old digest is still there.
    second, _ = _build(tmp_path, busybox, tags, 'CMD ["echo", "two"]\n', "second")
    moved = images.push(images.retag(second, facts.reference), f"{registry}/toolship")
    assert moved.reference == pushed.reference and moved.digest != pushed.digest
    assert images.resolve(pushed.reference) == (pushed.repository, moved.digest)
    assert images.inspect(pushed.image).cmd == ["echo", "one"]


def test_unknown_images_say_where_they_were_looked_for(registry: str) -> None:
    with pytest.raises(ImageNotFound, match=f"registry {registry} has no .*push it there"):
        images.inspect(f"{registry}/toolship/{unique_name('missing')}:1")
    with pytest.raises(ImageNotFound, match="not in this host's image storage: build it"):
        images.inspect(unique_name("missing"))
    with pytest.raises(InvalidRequest, match="no transport such as docker://"):
        images.inspect("docker://127.0.0.1:5055/x")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[GpgKey, GpgKey]:
    folder = tmp_path_factory.mktemp("keys")
    return make_gpg_key(folder, "trusted"), make_gpg_key(folder, "stranger")


def test_gpg_signatures_verify_offline_and_wrong_ones_are_refused(
    tmp_path: Path, busybox: str, registry: str, tags: list[str], keys: tuple[GpgKey, GpgKey]
) -> None:
    trusted, stranger = keys
    facts, _ = _build(tmp_path, busybox, tags, 'CMD ["echo", "signed"]\n', "sig")
    pushed = images.push(facts, f"{registry}/unsigned")
    base = pushed.repository.rpartition("/")[2]
    good, bad = f"{registry}/signed/{base}", f"{registry}/other/{base}"
    trusted.sign(pushed.reference, f"{good}:1")
    stranger.sign(pushed.reference, f"{bad}:1")
    expected = [SigningKey(scope=registry, gpg_key=trusted.public)]

    signature = signatures.verify(good, pushed.digest, expected)
    assert signature.verified and signature.kind == "gpg"
    assert signature.key == trusted.fingerprint
    tags.append(f"{good}@{pushed.digest}")
    assert _podman("image", "exists", f"{good}@{pushed.digest}", check=False).returncode == 0

    with pytest.raises(ImageRefused) as unsigned:
        signatures.verify(pushed.repository, pushed.digest, expected)
    assert "has no signature" in unsigned.value.message
    assert trusted.fingerprint in unsigned.value.message
    assert f"skopeo copy --sign-by {trusted.fingerprint}" in unsigned.value.message

    with pytest.raises(ImageRefused) as wrong:
        signatures.verify(bad, pushed.digest, expected)
    assert "is not signed by an expected key" in wrong.value.message
    assert trusted.fingerprint in wrong.value.message

    # Either of two keys of one scope will do; a key of a longer scope wins over both.
    both = [*expected, SigningKey(scope=registry, gpg_key=stranger.public)]
    assert signatures.verify(bad, pushed.digest, both).key == stranger.fingerprint
    tags.append(f"{bad}@{pushed.digest}")
    narrower = [*both, SigningKey(scope=f"{registry}/other", gpg_key=trusted.public)]
    with pytest.raises(ImageRefused, match="is not signed by an expected key"):
        signatures.verify(bad, pushed.digest, narrower)


def test_images_no_key_covers_or_only_local_are_refused(keys: tuple[GpgKey, GpgKey]) -> None:
    key = [SigningKey(scope="registry.example.org/team", gpg_key=keys[0].public)]
    digest = "sha256:" + "0" * 64
    with pytest.raises(ImageRefused, match=r"no signing key covers 127.0.0.1:5055/x"):
        signatures.verify("127.0.0.1:5055/x", digest, key)
    local = [SigningKey(scope="localhost", gpg_key=keys[0].public)]
    with pytest.raises(ImageRefused, match=r"only in this host's storage.*push it to a registry"):
        signatures.verify("localhost/tool", digest, local)


def test_images_verify_only_when_the_settings_ask(keys: tuple[GpgKey, GpgKey]) -> None:
    assert images.Images(ImageSettings()).verify("127.0.0.1:5055/x", "sha256:" + "0" * 64) is None


def _sigstore_sign(repository: str, digest: str, public: Path) -> None:
    """Attach a sigstore signature of ``repository@digest`` made with a new key (whose
    public half goes to ``public``), as ``skopeo copy --sign-by-sigstore-private-key``
    would, written by hand: Debian's skopeo refuses to make one."""
    key = ec.generate_private_key(ec.SECP256R1())
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    claim = {"docker-reference": repository}
    payload = json.dumps({"critical": {"identity": claim,
                                       "image": {"docker-manifest-digest": digest},
                                       "type": "cosign container image signature"},
                          "optional": None}).encode()  # fmt: skip
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    host, _, path = repository.partition("/")
    with httpx.Client(base_url=f"http://{host}/v2/{path}", timeout=30) as http:

        def blob(data: bytes) -> dict[str, Any]:
            sha = "sha256:" + hashlib.sha256(data).hexdigest()
            upload = http.post("/blobs/uploads/").raise_for_status().headers["location"]
            sep = "&" if "?" in upload else "?"
            http.put(f"{upload}{sep}digest={sha}", content=data).raise_for_status()
            return {"size": len(data), "digest": sha}

        layer = blob(payload)
        config = blob(json.dumps({"rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}})
                      .encode())  # fmt: skip
        oci = "application/vnd.oci.image"
        manifest = {
            "schemaVersion": 2,
            "mediaType": f"{oci}.manifest.v1+json",
            "config": {"mediaType": f"{oci}.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                        **layer,
                        "annotations": {"dev.cosignproject.cosign/signature": signature}}],
        }  # fmt: skip
        http.put(
            f"/manifests/{digest.replace(':', '-')}.sig",
            content=json.dumps(manifest).encode(),
            headers={"content-type": f"{oci}.manifest.v1+json"},
        ).raise_for_status()


def test_sigstore_signatures_are_refused_saying_this_host_cannot_verify_them(
    tmp_path: Path, busybox: str, registry: str, tags: list[str]
) -> None:
    """Debian 12 builds containers/image without sigstore: podman and skopeo refuse every
    sigstore-signed image ("Debian-local change: sigstore disabled").  The operator is told
    to use a GPG key; when a sigstore-capable skopeo arrives, this test says so."""
    facts, _ = _build(tmp_path, busybox, tags, 'CMD ["echo", "sigstore"]\n', "sigstore")
    pushed = images.push(facts, f"{registry}/sigstore")
    _sigstore_sign(pushed.repository, pushed.digest, tmp_path / "cosign.pub")
    key = [SigningKey(scope=registry, sigstore_key=tmp_path / "cosign.pub")]
    with pytest.raises(ImageRefused, match=r"its skopeo cannot .*sign with GPG"):
        signatures.verify(pushed.repository, pushed.digest, key)
