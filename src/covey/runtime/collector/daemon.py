"""``covey collector``: the collector forks into the background and serves there.

The foreground process forks. The child starts a new session (``setsid``: no terminal,
no signal from the shell's process group), takes the lock of ``<data>/collector.pid``
(one collector per data directory), opens the store, binds, and only then tells the
parent through a pipe: ``HOST:PORT`` or ``error: ...``, one line. Before it writes that
line its standard streams are on ``/dev/null`` (it logs to ``<data>/collector.log``), so
a caller capturing the foreground's output is not held open by the background. The
parent waits for the line (bounded), and returns the address or raises
:class:`StartError` with the child's reason; a child that says nothing in time is killed.

The keys travel by the fork itself: they are never on a command line, in the
environment or in a file the collector writes. SIGTERM stops the collector as ``stop``
does: the store is flushed, the socket closed, the pid file removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from covey.core import format_address
from covey.core.records import record
from covey.runtime.collector.server import Collector
from covey.runtime.collector.store import StoreError, TraceStore

log = logging.getLogger("covey.collector")

#: The lock and pid file, and the log, inside the data directory.
PIDFILE = "collector.pid"
LOGFILE = "collector.log"
#: Seconds the foreground waits for the background to listen.
START_TIMEOUT = 20.0


class StartError(Exception):
    """The collector could not start (message says why, in one line)."""


@record
class Started:
    """A collector running in the background."""

    address: str
    pid: int
    data: Path


def parse_bind(value: str) -> tuple[str, int]:
    """``HOST:PORT`` to listen on; port 0 lets the system choose. Raises ValueError."""
    host, sep, port_text = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host:
        raise ValueError(f"bind: {value!r} is not HOST:PORT")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bind: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError("bind: port must be 0..65535")
    return host, port


def start(keys: tuple[bytes, ...], bind: tuple[str, int], data: Path) -> Started:
    """Fork a collector serving ``data`` on ``bind``; returns once it listens.

    Raises:
        StartError: it could not lock the data directory, open the store or bind (the
            child's reason), or did not say anything within :data:`START_TIMEOUT`.
    """
    data = data.resolve()
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_fd)
        os.close(write_fd)
        raise StartError(f"cannot fork: {exc.strerror or exc}") from None
    if pid == 0:  # the background process: never returns
        os.close(read_fd)
        pipe = _Pipe(write_fd)
        code = 2
        try:
            code = _child(keys, bind, data, pipe)
        except BaseException as exc:  # anything: say it on the pipe, never unwind the CLI
            log.exception("collector failed")
            pipe.say(f"error: {exc}")
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        line = _read_line(read_fd, START_TIMEOUT)
    finally:
        os.close(read_fd)
    if line is None or not line or line.startswith("error: "):
        _reap(pid, kill=line is None)
        if line is None:
            raise StartError(f"the collector did not start in {START_TIMEOUT:g} s "
                             f"(see {data / LOGFILE})")  # fmt: skip
        raise StartError(line.removeprefix("error: ") or "the collector exited at start")
    return Started(line, pid, data)


def _read_line(fd: int, timeout: float) -> str | None:
    """The first line on ``fd``: "" at end of file without one, None at the timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf and len(buf) < 65536:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    return buf.split(b"\n", 1)[0].decode("utf-8", "replace")


def _reap(pid: int, *, kill: bool, timeout: float = 5.0) -> None:
    """Collect the exit of a child that failed (killing it first if it hangs)."""
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


class _Pipe:
    """The child's end of the start pipe: one line, then closed (never written again: its
    descriptor number may be reused by then)."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def say(self, line: str) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        with contextlib.suppress(OSError):
            os.write(fd, line.replace("\n", " ").encode() + b"\n")
        os.close(fd)


def _lock(data: Path) -> int:
    """Hold ``<data>/collector.pid`` locked, our pid in it; raises StartError if another
    collector holds it."""
    fd = os.open(data / PIDFILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        other = os.read(fd, 32).decode(errors="replace").strip() or "?"
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise StartError(f"another collector (pid {other}) uses {data}") from None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _child(keys: tuple[bytes, ...], bind: tuple[str, int], data: Path, pipe: _Pipe) -> int:
    os.setsid()
    try:
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = _lock(data)
    except OSError as exc:
        pipe.say(f"error: cannot use {data}: {exc.strerror or exc}")
        return 2
    except StartError as exc:
        pipe.say(f"error: {exc}")
        return 2
    try:
        handler = logging.FileHandler(data / LOGFILE)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logging.getLogger("covey").addHandler(handler)
        logging.getLogger("covey").setLevel(logging.INFO)
        store = TraceStore(data)
        return asyncio.run(_serve(keys, bind, data, store, lambda line: _detach(pipe, line)))
    except StoreError as exc:
        pipe.say(f"error: {exc}")
        return 2
    finally:
        with contextlib.suppress(OSError):
            os.unlink(data / PIDFILE)  # still ours: we hold its lock
        os.close(lock)
        log.info("collector stopped")


def _detach(pipe: _Pipe, line: str) -> None:
    """Put the standard streams on /dev/null, then tell the foreground ``line``."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.chdir("/")  # hold no directory the caller may want to remove
    pipe.say(line)


async def _serve(
    keys: tuple[bytes, ...],
    bind: tuple[str, int],
    data: Path,
    store: TraceStore,
    ready: Callable[[str], None],
) -> int:
    collector = Collector(store, list(keys), data_dir=data)
    try:
        address = await collector.start(*bind)
    except OSError as exc:
        store.close()
        # asyncio's message repeats the address: the system's reason is enough.
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        ready(f"error: cannot listen on {format_address(bind)}: {reason}")
        return 2
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, collector.request_stop)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)  # no terminal to lose
    log.info("collector pid %d listening on %s, data in %s", os.getpid(), address, data)
    ready(address)
    await collector.serve()
    return 0
