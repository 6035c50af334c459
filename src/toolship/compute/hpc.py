"""What every batch-scheduler backend shares (Funnel's "HPC" idea): data, not code.

A scheduler is described by a submit-script template, a job-id pattern, a
state table and one bulk status command.  This module holds the parts that do
not depend on which scheduler it is: rendering a readable script, running the
scheduler's commands with retries when its controller is busy, and a poller
that asks about *all* jobs in one call per tick, backing off when that fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shlex
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from toolship.errors import ToolshipError

__all__ = [
    "CommandFailed",
    "CommandRunner",
    "JobStatus",
    "Phase",
    "Poller",
    "parse_job_id",
    "render_script",
]

log = logging.getLogger(__name__)

# A scheduler command that does not answer in this long fails; it is not retried (an
# sbatch may have been accepted all the same).
COMMAND_TIMEOUT = 120.0


class Phase(StrEnum):
    """Where a scheduler job is, as far as toolship cares."""

    WAITING = "waiting"  # queued, not running yet
    RUNNING = "running"
    ENDED = "ended"  # over; the worker should have reported its end
    LOST = "lost"  # the node under it failed: the worker cannot report any more


@dataclass(frozen=True, slots=True)
class JobStatus:
    job_id: str
    state: str  # the scheduler's own word (RUNNING, NODE_FAIL, …)
    phase: Phase
    reason: str = ""
    nodes: str = ""


class CommandFailed(ToolshipError):
    """A scheduler command failed for good (after retries, when the error was transient)."""


def render_script(
    *,
    directive: str,
    options: Iterable[tuple[str, str]],
    comment: Iterable[str],
    body: Iterable[str],
) -> str:
    """A batch script a human can read: shebang, one directive per line, a comment, the body."""
    lines = ["#!/bin/sh"]
    lines += [f"{directive} --{key}={value}" for key, value in options]
    lines += [f"# {line}".rstrip() for line in comment]
    lines += list(body)
    return "\n".join(lines) + "\n"


def parse_job_id(pattern: re.Pattern[str], output: str) -> str:
    match = pattern.search(output)
    if match is None:
        raise CommandFailed(f"cannot read a job id from the scheduler's answer {output!r}")
    return match.group(1)


def quote(argv: Iterable[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


class CommandRunner:
    """Runs scheduler commands: at most ``concurrency`` at once, transient errors retried.

    A busy controller answers "Socket timed out" or "Resource temporarily
    unavailable"; those are retried with exponential back-off (0.5 s, 1 s, 2 s …,
    at most 30 s), anything else fails at once with the command's own message.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        attempts: int,
        transient: tuple[str, ...],
        first_backoff: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.slots = asyncio.Semaphore(concurrency)
        self.attempts = attempts
        self.transient = tuple(t.lower() for t in transient)
        self.first_backoff = first_backoff
        self.sleep = sleep

    async def _exec(self, argv: list[str]) -> tuple[int, str, str]:
        # A thread running subprocess.run (vfork + exec) rather than the event loop's
        # subprocess support: under uvloop that forks the whole server, several ms of
        # blocked loop per sbatch with a large heap.
        done = await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, timeout=COMMAND_TIMEOUT, check=False
        )
        out = done.stdout.decode(errors="replace")
        return done.returncode, out, done.stderr.decode(errors="replace")

    async def run(self, argv: list[str]) -> str:
        backoff = self.first_backoff
        for attempt in range(1, self.attempts + 1):
            async with self.slots:
                try:
                    code, out, err = await self._exec(argv)
                except subprocess.TimeoutExpired:
                    code, out, err = 1, "", f"no answer within {COMMAND_TIMEOUT:.0f} s (timed out)"
                except FileNotFoundError:
                    raise CommandFailed(
                        f"{argv[0]} is not installed on the server: install the scheduler's "
                        "client commands (Debian: apt-get install slurm-client)"
                    ) from None
            if code == 0:
                return out
            message = (err.strip() or out.strip() or f"exit code {code}").splitlines()[-1]
            if attempt < self.attempts and any(t in message.lower() for t in self.transient):
                log.warning("%s: %s; retrying in %.1f s", argv[0], message, backoff)
                await self.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            raise CommandFailed(f"{quote(argv[:2])} … failed: {message}")
        raise AssertionError("unreachable")


class Poller:
    """One bulk status call per tick for every job we follow, with back-off on failure.

    ``query`` returns the status of all jobs it knows (one scheduler call);
    ``deliver`` gets that map each tick.  No jobs followed, no call.  A failed
    call doubles the wait (at most a minute); a :meth:`poke` cuts it short, but
    calls stay at least ``interval`` apart.  ``clock`` and ``sleep`` are the
    only sense of time it has, so a test can hand it a fake one.
    """

    def __init__(
        self,
        *,
        interval: float,
        query: Callable[[], Awaitable[Mapping[str, JobStatus]]],
        deliver: Callable[[Mapping[str, JobStatus]], None],
        active: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.interval = interval
        self.query = query
        self.deliver = deliver
        self.active = active
        self.clock = clock
        self.sleep = sleep
        self.calls = 0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="toolship-reconcile")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def poke(self) -> None:
        """Poll soon (e.g. after a cancel), still at most once per interval."""
        self._wake.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when poked."""
        if self._wake.is_set():  # poked while the last call ran
            self._wake.clear()
            return
        woken = asyncio.ensure_future(self._wake.wait())
        slept = asyncio.ensure_future(self.sleep(seconds))
        try:
            await asyncio.wait((woken, slept), return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            slept.cancel()
        self._wake.clear()

    async def _loop(self) -> None:
        delay = self.interval
        last = self.clock() - self.interval
        while True:
            await self._pause(delay)
            wait = last + self.interval - self.clock()
            if wait > 0:
                await self.sleep(wait)
            if not self.active():
                delay = self.interval
                continue
            last = self.clock()
            self.calls += 1
            try:
                statuses = await self.query()
            except Exception as exc:
                delay = min(delay * 2, 60.0)
                log.warning("job status query failed (%s); next try in %.0f s", exc, delay)
                continue
            delay = self.interval
            try:
                self.deliver(statuses)
            except Exception:
                log.exception("reconciling job states failed")
