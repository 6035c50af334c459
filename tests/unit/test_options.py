from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from toolship.config import Settings
from toolship.errors import InvalidRequest
from toolship.models import Resources
from toolship.options import OptionDefaults, read_options


def opts(**res: object) -> object:
    return read_options(
        Resources.model_validate(res), OptionDefaults(runtime="podman", cpus=1, memory_gb=0.0)
    )


def test_defaults() -> None:
    o = read_options(None, OptionDefaults(runtime="podman", cpus=1, memory_gb=0.0))
    assert (o.cpus, o.network, o.timeout, o.runtime, o.memory_limited) == (
        1, False, None, "podman", False
    )  # fmt: skip


def test_keys_are_case_insensitive_and_parsed() -> None:
    o = opts(backend_parameters={"Network": "true", "TIMEOUT": "1m30s", "runtime": "process"})
    assert o.network is True  # type: ignore[attr-defined]
    assert o.timeout == 90  # type: ignore[attr-defined]
    assert o.runtime == "process"  # type: ignore[attr-defined]


def test_the_images_entrypoint_runs_unless_the_task_says_command() -> None:
    assert opts().keep_entrypoint is True  # type: ignore[attr-defined]
    said = opts(backend_parameters={"entrypoint": "Command"})
    assert said.keep_entrypoint is False  # type: ignore[attr-defined]


def test_credentials_are_kept_apart_and_never_echoed() -> None:
    given = {k: "x" for k in ("s3_access_key_id", "s3_secret_access_key", "s3_session_token")}
    given |= {"webdav_username": "u", "webdav_password": "p", "network": "true"}
    o = opts(backend_parameters=given)
    assert o.parameters == {"network": "true"}  # type: ignore[attr-defined]
    assert o.credentials == {k: v for k, v in given.items() if k != "network"}  # type: ignore[attr-defined]


def test_unknown_key_is_ignored_with_a_warning_unless_strict() -> None:
    o = opts(backend_parameters={"VmSize": "big"})
    assert o.parameters == {}  # type: ignore[attr-defined]
    assert "VmSize" in o.warnings[0]  # type: ignore[attr-defined]
    with pytest.raises(InvalidRequest, match="'VmSize' is not supported"):
        opts(backend_parameters={"VmSize": "big"}, backend_parameters_strict=True)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"network": "maybe"}, "must be true or false"),
        ({"timeout": "soon"}, "not a duration"),
        ({"runtime": "lxc"}, "unknown"),
        ({"priority": "high"}, "must be an integer"),
        ({"entrypoint": "keep"}, "use image .* or command"),
    ],
)
def test_bad_values_name_the_key(params: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        opts(backend_parameters=params)


@pytest.mark.parametrize(
    "res",
    [{}, {"cpu_cores": 3}, {"ram_gb": 0.5}, {"backend_parameters": {"runtime": "process"}}],
)
def test_pinned_defaults_read_the_same_options_back_whatever_the_server_says_later(
    res: dict[str, object],
) -> None:
    resources = Resources.model_validate(res)
    then = OptionDefaults(runtime="podman", cpus=1, memory_gb=2.0, memory_limited=True)
    accepted = read_options(resources, then)
    later = OptionDefaults(runtime="docker", cpus=4, memory_gb=8.0)
    assert read_options(resources, accepted.pinned()) == accepted
    assert read_options(resources, later) != accepted


def test_server_defaults_limit_memory_on_this_machine_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key in [k for k in os.environ if k.startswith("TOOLSHIP_")]:
        monkeypatch.delenv(key)

    def defaults(**settings: Any) -> OptionDefaults:
        return OptionDefaults.of(Settings(home=Path("/nonexistent"), **settings))

    local = defaults(local={"memory_gb": 1.5, "default_memory_gb": 2, "runtime": "process"})
    assert local == OptionDefaults("process", 1, 1.5, memory_limited=True)
    slurm = defaults(backend="slurm", local={"default_memory_gb": 2})
    assert slurm == OptionDefaults("podman", 1, 2.0, memory_limited=False)
    assert not defaults(local={"default_memory_gb": 0}).memory_limited
