from __future__ import annotations

import pytest

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
    ],
)
def test_bad_values_name_the_key(params: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        opts(backend_parameters=params)
