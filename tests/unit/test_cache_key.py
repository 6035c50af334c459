"""The result cache's key: what is in it changes it; what is not, does not."""

from __future__ import annotations

import dataclasses

from toolship.supply.cache import KEY_VERSION, ExecutorKey, InputKey, OutputKey, cache_key

DIGEST = "sha256:" + "a" * 64
EX = ExecutorKey.of(DIGEST, ["sh", "-c", "x"], {"B": "2", "A": "1"}, "/work")
IN = [InputKey("/in/a", "FILE", (("", "1" * 64),)), InputKey("/in/d", "DIRECTORY",
      (("x", "2" * 64), ("y/z", "3" * 64)))]  # fmt: skip
OUT = [OutputKey("/out/r", "FILE")]
KEY = cache_key([EX], IN, OUT, ["/vol"])


def test_the_key_is_a_sha256_and_stable() -> None:
    assert KEY.startswith("sha256:") and len(KEY) == 71
    assert KEY_VERSION == 1
    # env order, input order and a directory's file order decide nothing
    same_env = ExecutorKey.of(DIGEST, ["sh", "-c", "x"], {"A": "1", "B": "2"}, "/work")
    files = (("y/z", "3" * 64), ("x", "2" * 64))
    flipped = [dataclasses.replace(IN[1], files=files), IN[0]]
    assert cache_key([same_env], flipped, OUT, ["/vol"]) == KEY


def test_every_part_of_the_key_changes_it() -> None:
    one_byte = (("", "4" * 64),)
    changed = [
        cache_key([dataclasses.replace(EX, digest="sha256:" + "b" * 64)], IN, OUT, ["/vol"]),
        cache_key([dataclasses.replace(EX, command=("sh", "-c", "y"))], IN, OUT, ["/vol"]),
        cache_key([dataclasses.replace(EX, env=(("A", "1"), ("B", "3")))], IN, OUT, ["/vol"]),
        cache_key([dataclasses.replace(EX, workdir="/w")], IN, OUT, ["/vol"]),
        cache_key([dataclasses.replace(EX, stdout="/out/log")], IN, OUT, ["/vol"]),
        cache_key([EX], [dataclasses.replace(IN[0], files=one_byte), IN[1]], OUT, ["/vol"]),
        cache_key([EX], [dataclasses.replace(IN[0], path="/in/b"), IN[1]], OUT, ["/vol"]),
        cache_key([EX], IN, [OutputKey("/out/r", "DIRECTORY")], ["/vol"]),
        cache_key([EX], IN, [OutputKey("/out/s", "FILE")], ["/vol"]),
        cache_key([EX], IN, OUT, []),
        cache_key([EX, EX], IN, OUT, ["/vol"]),
    ]
    assert len({KEY, *changed}) == len(changed) + 1
