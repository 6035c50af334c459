"""Start, follow and stop one executor — the same for every runtime.

On the server's host the :class:`~toolship.runtime.keeper.Keeper` starts the
executor and writes its exit code to a file, and tells the server when it ended.
Elsewhere (a worker inside a Slurm job, which lives as long as its one task) the
command runs under a tiny ``sh`` wrapper that writes the file, and the worker
learns that its child ended through a pidfd on its event loop.  Either way the
executor is in a session of its own, so it survives the server being killed; a
restarted server finds it again by its pid and exit file (see
:func:`find_launched`) instead of losing or re-running it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from toolship.runtime.base import ExecSpec, Runtime
from toolship.runtime.keeper import Keeper, alive, follow, read_exit_file

__all__ = ["Launched", "find_launched", "launch", "run_for_output", "run_quietly", "stop"]

_WRAPPER = 'f=$1; shift; "$@"; rc=$?; echo "$rc" > "$f"; exit "$rc"'


@dataclass
class Launched:
    """A running executor: the keeper's, our child, or one found again after a restart."""

    pid: int
    exit_file: Path
    process: subprocess.Popen[bytes] | None = None
    keeper: Keeper | None = None
    _end: asyncio.Future[int | None] | None = field(default=None, init=False, repr=False)

    async def wait(self) -> int | None:
        """The exit code, or None if the executor vanished without leaving one."""
        if self.keeper is not None:
            return await asyncio.shield(self._kept(self.keeper))
        if self.process is not None:
            return await _reap(self.process)
        return await follow(self.pid, self.exit_file)

    def on_exit(self, callback: Callable[[int | None], None]) -> None:
        """Call ``callback(exit code)`` once the executor ended (None: vanished, no code).

        For our own child it is called straight from the pidfd's readiness callback,
        so a waiting worker resumes in the next turn of the event loop.
        """
        if self.keeper is not None:
            self._kept(self.keeper).add_done_callback(lambda ended: callback(ended.result()))
            return
        loop = asyncio.get_running_loop()
        process = self.process
        if process is not None and process.poll() is not None:
            loop.call_soon(callback, process.returncode)
            return
        fd = -1
        if process is not None:
            with contextlib.suppress(OSError):
                fd = os.pidfd_open(process.pid)
        if process is None or fd < 0:  # found again after a restart, or no pidfd
            waiter = asyncio.ensure_future(self.wait())
            waiter.add_done_callback(lambda w: callback(None if w.cancelled() else w.result()))
            return

        def readable() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            callback(process.wait())  # ended: wait() only collects the status

        loop.add_reader(fd, readable)

    def _kept(self, keeper: Keeper) -> asyncio.Future[int | None]:
        """The end of the keeper's executor, asked of the keeper once however often it is
        waited for."""
        if self._end is None:
            end = self._end = asyncio.get_running_loop().create_future()
            keeper.on_exit(self.pid, lambda code: None if end.done() else end.set_result(code))
        return self._end

    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return alive(self.pid, self.exit_file) and read_exit_file(self.exit_file) is None


async def _reap(process: subprocess.Popen[bytes]) -> int:
    """Our child's exit code, once its pidfd says it ended."""
    if process.poll() is not None:
        return process.wait()
    try:
        fd = os.pidfd_open(process.pid)
    except OSError:  # no pidfd on this kernel (or already reaped): a thread waits instead
        return await asyncio.to_thread(process.wait)
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await ended
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return process.wait()


async def launch(
    runtime: Runtime,
    spec: ExecSpec,
    *,
    stdin: int | None,
    stdout: Path,
    stderr: Path,
    exit_file: Path,
    wrap: Callable[[list[str]], list[str]] | None = None,
    keeper: Keeper | None = None,
) -> Launched:
    """Start the executor; ``wrap`` may put a launcher around it (multi-node ranks).

    ``stdin`` is an open file (the caller opened it without following links);
    ``stdout`` and ``stderr`` are the server's own capture files, created afresh.
    With a ``keeper`` it starts the executor; without, an ``sh`` wrapper does.
    """
    argv = runtime.command(spec)
    user = runtime.run_as(spec)
    if wrap is not None:
        argv = wrap(argv)
    exit_file.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    fout = os.open(stdout, flags, 0o644)
    try:
        ferr = fout if stderr == stdout else os.open(stderr, flags, 0o644)
        try:
            if keeper is not None:
                pid = await keeper.spawn(
                    argv,
                    cwd=runtime.cwd(spec),
                    env=runtime.environment(spec),
                    exit_file=exit_file,
                    user=user,
                    stdin=stdin,
                    stdout=fout,
                    stderr=ferr,
                )
                if pid is None:  # it never started: the exit file says how it ended
                    return Launched(pid=-1, exit_file=exit_file)
                return Launched(pid=pid, exit_file=exit_file, keeper=keeper)
            # Popen (vfork + exec, a fraction of a millisecond) rather than asyncio's
            # subprocess transport: no pipes are needed, and the exit is watched by _reap.
            proc = subprocess.Popen(
                ["sh", "-c", _WRAPPER, "toolship-exec", str(exit_file), *_dropped(user), *argv],
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=fout,
                stderr=ferr,
                cwd=runtime.cwd(spec),
                env=runtime.environment(spec),
                start_new_session=True,
            )
        finally:
            if ferr != fout:
                os.close(ferr)
    finally:
        os.close(fout)
    return Launched(pid=proc.pid, exit_file=exit_file, process=proc)


def _dropped(user: tuple[int, int] | None) -> list[str]:
    """What makes the wrapped command run as ``user`` (none: as the server)."""
    if user is None:
        return []
    uid, gid = user
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all",
            "--"]  # fmt: skip


def find_launched(pid: int | None, exit_file: Path) -> Launched | None:
    """Find an executor started by an earlier server process, by pid or by its exit file.

    None means it never started (no exit file, no process that names the file in its
    command line or, started by a keeper, its environment): starting it now runs it
    once, not twice.
    """
    if pid is not None and (alive(pid, exit_file) or read_exit_file(exit_file) is not None):
        return Launched(pid=pid, exit_file=exit_file)
    if read_exit_file(exit_file) is not None:
        return Launched(pid=pid or -1, exit_file=exit_file)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and alive(int(proc.name), exit_file):
            return Launched(pid=int(proc.name), exit_file=exit_file)
    return None


async def run_quietly(argv: list[str]) -> None:
    """Run a short command (``podman rm -f …``) in a thread, output discarded.

    Not the event loop's subprocess support: under uvloop that forks the whole server.
    """
    await asyncio.to_thread(
        subprocess.run, argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )


async def run_for_output(argv: list[str], timeout: float = 30) -> str | None:
    """A short command's standard output (None if it failed), run in a thread like above."""

    def run() -> str | None:
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout if done.returncode == 0 else None

    return await asyncio.to_thread(run)


async def _exited(launched: Launched, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(launched.wait(), seconds)
        return True
    return not launched.running()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def stop(runtime: Runtime, launched: Launched, name: str, grace_seconds: int) -> None:
    """Stop the executor and make sure nothing of it keeps running."""
    commands = runtime.stop_commands(name, grace_seconds)
    if commands:
        # The container may not exist yet if `run` was just started: repeat until it is gone.
        for _ in range(5):
            for argv in commands:
                await run_quietly(argv)
            if await _exited(launched, 1.0):
                return
    else:
        _signal_group(launched.pid, signal.SIGTERM)
        if await _exited(launched, float(grace_seconds)):
            return
    _signal_group(launched.pid, signal.SIGKILL)
    await _exited(launched, 2.0)
