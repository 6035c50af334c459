"""The sha256 an attempt records of its files, as TES metadata: inputs and outputs apart.

``sha256:{container path}`` holds the hash of every staged input file and every
delivered output file.  A path can be both (``--sync``: a folder is an input and an
output; a task that rewrites an input in its working directory): the output's hash
then takes the key, and the input's moves to ``sha256.in:{path}``.  Readers go through
:func:`input_hashes` and :func:`output_hashes`, never by key.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

__all__ = ["HASH", "INPUT_HASH", "file_hashes", "input_hashes", "record_hash"]

HASH = "sha256:"
INPUT_HASH = "sha256.in:"


def record_hash(meta: MutableMapping[str, str], path: str, sha256: str, *, output: bool) -> None:
    """Record one file's hash; an output at an input's path keeps the input's apart."""
    key = HASH + path
    held = meta.get(key)
    if output and held is not None and held != sha256:
        meta.setdefault(INPUT_HASH + path, held)
    meta[key] = sha256


def file_hashes(meta: Mapping[str, str] | None) -> dict[str, str]:
    """Every ``sha256:`` entry by path: the inputs' and the outputs' (an output wins)."""
    return {k.removeprefix(HASH): v for k, v in (meta or {}).items() if k.startswith(HASH)}


def input_hashes(meta: Mapping[str, str] | None) -> dict[str, str]:
    """The paths whose input hash was kept apart (an output took their key), by path."""
    return {
        k.removeprefix(INPUT_HASH): v for k, v in (meta or {}).items() if k.startswith(INPUT_HASH)
    }
