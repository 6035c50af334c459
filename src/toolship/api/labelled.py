"""Every rank's log as one stream, each line prefixed with its rank as ``srun --label`` does.

A multi-node task's ranks write their own captures; an attached ``toolship run``
follows all of them through one request.  Each rank's lines keep their order;
between ranks, lines come as they arrive.  Only whole lines are labelled, so a
line is never cut by another rank's (a rank's last line without a newline gets
one).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

__all__ = ["LineLabels", "label_width", "labelled"]

# A line longer than this (a progress bar redrawn with \r, say) is let out in pieces.
_LONGEST = 64 * 1024


def label_width(ranks: int) -> int:
    """How wide the labels are: srun pads every rank to the width of the last."""
    return len(str(max(ranks - 1, 0)))


class LineLabels:
    """One rank's stream cut into whole lines, each prefixed ``"<rank>: "``."""

    def __init__(self, rank: int, width: int) -> None:
        self.prefix = f"{rank:>{width}}: ".encode()
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """The labelled whole lines ``chunk`` completes (the rest waits for its newline)."""
        data = self.pending + chunk
        cut = data.rfind(b"\n") + 1
        if len(data) - cut > _LONGEST:
            cut = len(data)
        self.pending = data[cut:]
        lines = data[:cut].split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        return b"".join(self.prefix + line + b"\n" for line in lines)

    def end(self) -> bytes:
        """What is left once the stream ended: a last line without its newline."""
        rest, self.pending = self.pending, b""
        return self.prefix + rest + b"\n" if rest else b""


async def _next(source: AsyncIterator[bytes]) -> bytes:
    return await anext(source)


async def labelled(sources: Sequence[AsyncIterator[bytes]]) -> AsyncIterator[bytes]:
    """The ranks' streams (``sources[r]`` is rank r's) merged into labelled lines.

    One read per rank is outstanding at a time, so a slow reader holds the ranks
    back instead of their output piling up here; a reader that leaves stops them all.
    """
    width = label_width(len(sources))
    reads: dict[asyncio.Task[bytes], tuple[AsyncIterator[bytes], LineLabels]] = {
        asyncio.ensure_future(_next(s)): (s, LineLabels(r, width)) for r, s in enumerate(sources)
    }
    try:
        while reads:
            done, _ = await asyncio.wait(reads, return_when=asyncio.FIRST_COMPLETED)
            for read in done:
                source, labels = reads.pop(read)
                try:
                    chunk = read.result()
                except StopAsyncIteration:
                    out = labels.end()
                else:
                    out = labels.feed(chunk)
                    reads[asyncio.ensure_future(_next(source))] = (source, labels)
                if out:
                    yield out
    finally:  # the reader left (or a rank's read failed): stop following the others
        for read in reads:
            read.cancel()
