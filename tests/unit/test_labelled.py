"""Every rank's log as one stream: lines labelled as ``srun --label`` does, never cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from toolship.api.labelled import LineLabels, label_width, labelled


def test_whole_lines_are_labelled_and_a_partial_one_waits_for_its_newline() -> None:
    labels = LineLabels(1, 1)
    assert labels.feed(b"one\ntw") == b"1: one\n"
    assert labels.feed(b"o\r50%\rdone\n\nthr") == b"1: two\r50%\rdone\n1: \n"
    assert labels.end() == b"1: thr\n"
    assert labels.end() == b""


def test_labels_are_as_wide_as_the_last_rank_s() -> None:
    assert [label_width(n) for n in (1, 2, 10, 11, 101)] == [1, 1, 1, 2, 3]
    assert LineLabels(3, 2).feed(b"x\n") == b" 3: x\n"


def test_a_line_longer_than_the_limit_comes_out_in_pieces() -> None:
    labels = LineLabels(0, 1)
    out = labels.feed(b"x" * 70_000)
    assert out == b"0: " + b"x" * 70_000 + b"\n" and labels.pending == b""


async def _chunks(*parts: bytes, pause: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    for part in parts:
        if pause is not None:
            await pause.wait()
        yield part


def test_ranks_merge_line_by_line_each_in_its_own_order() -> None:
    async def merged() -> list[bytes]:
        return [chunk async for chunk in labelled([
            _chunks(b"a1\na", b"2\n", b"a3"),
            _chunks(b"b1\n", b"b2\nb3\n"),
        ])]  # fmt: skip

    lines = b"".join(asyncio.run(merged())).splitlines()
    assert [x for x in lines if x.startswith(b"0: ")] == [b"0: a1", b"0: a2", b"0: a3"]
    assert [x for x in lines if x.startswith(b"1: ")] == [b"1: b1", b"1: b2", b"1: b3"]
    assert len(lines) == 6


def test_a_reader_that_leaves_stops_following_every_rank() -> None:
    async def leave() -> tuple[bytes, bool]:
        never = asyncio.Event()
        waiting = _chunks(b"never\n", pause=never)
        stream = labelled([_chunks(b"first\n"), waiting])
        first = await anext(stream)
        await stream.aclose()
        await asyncio.sleep(0)
        return first, waiting.ag_running

    first, running = asyncio.run(leave())
    assert first == b"0: first\n" and not running
