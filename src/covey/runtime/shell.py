"""Run one shell command from the event loop: stdin in, stdout and stderr out, its status.

The agent runs a shell command per cluster-wide action, per delivery stage, per export
and per event hook. ``asyncio.create_subprocess_shell`` costs the loop's thread about
0.45 ms of CPU per command on the machines we measure (three pipe transports and their
protocols, and on Python 3.11 a thread per child to wait for it), where the command
itself (``sh -c true``) costs 0.75 ms; at an action's fan-out ten agents spawn at once on
two cores, so that overhead delays the agents that have not yet received the action. This
module does the same with ``subprocess.Popen`` (vfork on Linux) and three plain pipes
watched by the loop, and waits for the exit on a pidfd: about 0.19 ms per command, no
thread (``docs/benchmarks.md``, "Action fan-out").

Where ``os.pidfd_open`` is missing (not Linux, or a kernel before 5.3) it falls back to
``asyncio.create_subprocess_shell``, with the same results (but that path buffers the
whole output before cutting it to the bound).

What a caller gets is what ``communicate()`` gave: the exit status once the command has
exited and closed its output, the first ``keep`` octets of stdout and the last ``keep``
of stderr (where the reason of a failure is); the rest is read and counted, never
buffered, so a chatty command cannot fill the agent's memory. On a timeout or a
cancellation the command's whole process group is killed (it runs in a session of its
own) and reaped (on a thread if it has not died yet) before the exception goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping

from covey.core.records import record

#: Octets of stdout and of stderr kept by default (the rest is counted, not kept).
KEEP = 1 << 20
_READ = 1 << 16


@record
class ShellResult:
    """What a command did: exit status (negative: killed by that signal), its output.

    ``out_size``/``err_size`` count every octet it wrote, kept or not.
    """

    code: int
    out: bytes
    err: bytes
    out_size: int
    err_size: int


class _Sink:
    """One of the child's output pipes, read as the loop sees data: its first ``keep``
    octets kept (``tail``: its last ``keep``), the rest counted."""

    __slots__ = ("buf", "fd", "keep", "size", "tail")

    def __init__(self, fd: int, keep: int, *, tail: bool = False) -> None:
        self.fd = fd
        self.keep = keep
        self.tail = tail
        self.size = 0
        # What is kept: the head (at most ``keep``), or the tail (up to twice ``keep``
        # between trims, so that a trim is amortised O(1) a read).
        self.buf = bytearray()

    def read(self) -> bool:
        """Read what is there; False at EOF (or on an error, which ends the pipe too)."""
        try:
            data = os.read(self.fd, _READ)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        self.size += len(data)
        buf = self.buf
        if self.tail:
            buf += data
            if len(buf) > 2 * self.keep:
                del buf[: len(buf) - self.keep]
        elif len(buf) < self.keep:
            buf += data[: self.keep - len(buf)]
        return True

    def value(self) -> bytes:
        if self.tail:
            return bytes(self.buf[len(self.buf) - self.keep :]) if self.keep else b""
        return bytes(self.buf)


async def run_shell(
    command: str,
    env: Mapping[str, str],
    stdin: bytes = b"",
    *,
    keep: int = KEEP,
) -> ShellResult:
    """Run ``command`` with ``/bin/sh -c`` in a new session, environment ``env`` (whole),
    ``stdin`` on its standard input; wait until it has exited and closed its output.

    Cancel it (``asyncio.timeout``) to kill the command's process group.

    Raises:
        OSError: the command could not be started (no ``/bin/sh``, no processes left).
    """
    if not hasattr(os, "pidfd_open"):
        return await _run_asyncio(command, env, stdin, keep)
    loop = asyncio.get_running_loop()
    fds: list[int] = []
    try:
        in_r, in_w = os.pipe()
        fds += (in_r, in_w)
        out_r, out_w = os.pipe()
        fds += (out_r, out_w)
        err_r, err_w = os.pipe()
        fds += (err_r, err_w)
        proc = subprocess.Popen(
            command,
            shell=True,
            stdin=in_r,
            stdout=out_w,
            stderr=err_w,
            env=dict(env),
            start_new_session=True,
        )
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:
        # The kernel has pidfds but refuses one (e.g. seccomp): wait on a thread.
        pidfd = -1
    done: asyncio.Future[None] = loop.create_future()
    sinks = [_Sink(out_r, keep), _Sink(err_r, keep, tail=True)]
    open_ends = {out_r, err_r} | ({pidfd} if pidfd >= 0 else set())
    feed = _Feed(in_w, stdin)

    def close_end(fd: int) -> None:
        if fd in open_ends:
            open_ends.discard(fd)
            loop.remove_reader(fd)
            if not open_ends and not done.done():
                done.set_result(None)

    def on_output(sink: _Sink) -> None:
        if not sink.read():
            close_end(sink.fd)

    def on_writable() -> None:
        if not feed.write():
            loop.remove_writer(in_w)
            feed.close()

    try:
        for fd in (out_r, err_r, in_w):
            os.set_blocking(fd, False)
        for sink in sinks:
            loop.add_reader(sink.fd, on_output, sink)
        if pidfd >= 0:
            loop.add_reader(pidfd, close_end, pidfd)
        if feed.write():  # usually all of it at once (a pipe holds 64 KiB)
            loop.add_writer(in_w, on_writable)
        else:
            feed.close()
        await done
        if pidfd < 0:
            await asyncio.to_thread(proc.wait)
    except BaseException:
        # Timed out or cancelled: the command's whole process group goes.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    finally:
        for fd in list(open_ends):
            loop.remove_reader(fd)
        if not feed.closed:
            loop.remove_writer(in_w)
            feed.close()
        for fd in (out_r, err_r, pidfd):
            if fd >= 0:
                os.close(fd)
        _reap(proc)
    out, err = sinks
    code = proc.returncode if proc.returncode is not None else -1
    return ShellResult(code, out.value(), err.value(), out.size, err.size)


class _Feed:
    """The child's stdin: ``data`` written as the pipe takes it, then closed."""

    __slots__ = ("closed", "fd", "pending")

    def __init__(self, fd: int, data: bytes) -> None:
        self.fd = fd
        self.pending = memoryview(data)
        self.closed = False

    def write(self) -> bool:
        """Write what the pipe takes; True while something is left to write."""
        try:
            while self.pending:
                self.pending = self.pending[os.write(self.fd, self.pending) :]
        except BlockingIOError:
            return True
        except OSError:  # EPIPE: the command closed its stdin, it does not want the rest
            self.pending = self.pending[:0]
        return False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Collect ``proc``'s exit status: at once if it has exited (the pidfd said so), else
    (killed just now, or a pidfd-less wait that was cancelled) on a thread of its own, so
    the loop never blocks and no zombie stays behind."""
    if proc.poll() is None:
        threading.Thread(target=proc.wait, name="covey-reap", daemon=True).start()


async def _run_asyncio(
    command: str, env: Mapping[str, str], stdin: bytes, keep: int
) -> ShellResult:
    proc = await asyncio.create_subprocess_shell(
        command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        start_new_session=True,
    )
    try:
        out, err = await proc.communicate(stdin)
    except BaseException:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.shield(proc.wait())
        raise
    code = proc.returncode if proc.returncode is not None else -1
    return ShellResult(code, out[:keep], err[-keep:] if keep else b"", len(out), len(err))
