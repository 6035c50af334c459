"""One timer for the earliest of the batch deadlines: the engine core asks for the next."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

__all__ = ["AlarmClock"]


class AlarmClock:
    """Calls ``ring(now)`` at or after the earliest time it was armed for, once.

    Arming for a later time than the one pending changes nothing: when it rings,
    the core answers with the next time it wants.  Times are seconds since the
    epoch (what the store keeps), turned into a delay on the event loop's clock.
    """

    def __init__(self, ring: Callable[[float], None]) -> None:
        self._ring = ring
        self._handle: asyncio.TimerHandle | None = None
        self._at = math.inf

    def arm(self, at: float) -> None:
        if self._handle is not None:
            if self._at <= at:
                return
            self._handle.cancel()
        self._at = at
        delay = max(0.0, at - time.time())
        self._handle = asyncio.get_running_loop().call_later(delay, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._ring(time.time())
