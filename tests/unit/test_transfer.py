"""The byte moving every scheme shares: one pass that copies and hashes, ranges in order."""

from __future__ import annotations

import hashlib
import io
import threading

from toolship.storage.transfer import copy_stream, ranged_copy

DATA = bytes(range(256)) * (40 * 1024 + 7)  # about 10 MiB: five ranges


def test_ranges_are_written_and_hashed_in_order_whatever_order_they_arrive_in() -> None:
    later_range_read = threading.Event()

    def read(path: str, start: int, end: int) -> bytes:
        if start == 0:  # the first range waits for a later one
            assert later_range_read.wait(10)
        else:
            later_range_read.set()
        return DATA[start:end]

    out = io.BytesIO()
    digest = ranged_copy(read, "x", len(DATA), out, md5=True)
    assert out.getvalue() == DATA
    assert digest.size == len(DATA)
    assert digest.sha256 == hashlib.sha256(DATA).hexdigest()
    assert digest.md5 == hashlib.md5(DATA, usedforsecurity=False).hexdigest()
    assert digest == copy_stream(io.BytesIO(DATA), io.BytesIO(), md5=True)


def test_a_short_range_shows_as_a_size_the_store_did_not_say() -> None:
    def read(path: str, start: int, end: int) -> bytes:
        return DATA[start : end - 1 if start == 0 else end]

    digest = ranged_copy(read, "x", len(DATA), io.BytesIO(), md5=False)
    assert digest.size == len(DATA) - 1 and digest.md5 == ""
