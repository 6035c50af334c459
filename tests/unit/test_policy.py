"""The operator's policy: unset settings take the default of the kind of server."""

from __future__ import annotations

import pytest

from toolship.config import PolicySettings
from toolship.engine.policy import check_image, check_policy, resolve_policy
from toolship.errors import InvalidRequest
from toolship.models import Resources
from toolship.options import OptionDefaults, read_options


def test_a_shared_server_defaults_to_containers_only_and_no_host_features() -> None:
    p = resolve_policy(PolicySettings(), embedded=False)
    assert p.runtimes == {"podman", "docker"}
    assert p.host_network is False and p.multi_node is True
    assert p.image_transports == frozenset() and p.s3_profiles == frozenset()


def test_the_embedded_server_allows_what_its_user_could_do_anyway() -> None:
    p = resolve_policy(PolicySettings(), embedded=True)
    assert p.runtimes == {"podman", "docker", "process"}
    assert p.host_network is True and p.multi_node is True
    assert p.image_transports == frozenset() and p.s3_profiles is None  # any profile


def test_explicit_settings_win_on_both_kinds() -> None:
    settings = PolicySettings(
        runtimes=["podman"], host_network=False, multi_node=False, s3_profiles=["lab"],
        image_transports=["OCI-Archive"],
    )  # fmt: skip
    for embedded in (False, True):
        p = resolve_policy(settings, embedded=embedded)
        assert p.runtimes == {"podman"} and not p.host_network and not p.multi_node
        assert p.s3_profiles == {"lab"} and p.image_transports == {"oci-archive"}
    assert resolve_policy(PolicySettings(s3_profiles=["*"]), embedded=False).s3_profiles is None


def _check(backend: str = "local", embedded: bool = False, **params: str) -> None:
    options = read_options(
        Resources(backend_parameters=params), OptionDefaults(runtime="podman", cpus=1, memory_gb=0)
    )
    policy = resolve_policy(PolicySettings(), embedded=embedded)
    check_policy(options, policy, default_runtime="podman", backend=backend)


def test_refusals_name_the_setting() -> None:
    with pytest.raises(InvalidRequest, match=r"policy\.runtimes \(allowed here: docker, podman\)"):
        _check(runtime="process")
    with pytest.raises(InvalidRequest, match=r"policy\.host_network"):
        _check(backend="slurm", nodes="2")
    with pytest.raises(InvalidRequest, match=r"policy\.s3_profiles \(allowed here: none\)"):
        _check(s3_profile="default")
    _check(nodes="2")  # the local backend's ranks share a private network
    _check(backend="slurm", embedded=True, nodes="2", runtime="process", s3_profile="x")


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "localhost/toolship-busybox",
        "docker.io/library/alpine:3.20",
        "127.0.0.1:5055/team/tool_x:v1.2-rc",
        "ghcr.io/org/a/b/c@sha256:" + "0" * 64,
        "docker:latest",  # the image named docker, not the docker:// transport
    ],
)
def test_plain_references_pass(image: str) -> None:
    check_image(image, resolve_policy(PolicySettings(), embedded=False), "image")


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("oci-archive:/x.tar", "transport 'oci-archive:'"),
        ("docker://busybox", "transport 'docker:'"),
        ("containers-storage:busybox", "transport 'containers-storage:'"),
        ("http://host/x", "transport 'http:'"),
        ("busybox;id", "not a plain image reference"),
        ("Busybox", "not a plain image reference"),
        ("busybox:", "not a plain image reference"),
    ],
)
def test_transports_and_odd_references_are_refused(image: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        check_image(image, resolve_policy(PolicySettings(), embedded=False), "image")
