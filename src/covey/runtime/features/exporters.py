"""Where the shared state goes besides the API: a directory tree, a command, event scripts.

* :class:`DirectoryExporter` mirrors the state into a tree, one file per key, each
  written atomically (a temporary file in the same directory, then ``rename``), so a
  reader sees the old or the new content, never a torn one::

      DIR/local_version            this node's version (seed 000's local_version)
      DIR/lowest_version           the cluster's lowest (absent while unknown)
      DIR/versions/NODE            every counted member's version (remote_version)
      DIR/nodes/NODE/KEY           every fact of every node we hold
      DIR/settings/NAME            cluster-wide settings

* :class:`CommandRunner` runs shell commands one after the other, in order, off the event
  loop's critical path, with a bounded backlog (excess is dropped and counted). It serves
  the per-change export command (``COVEY_EXPORT_PATH``/``COVEY_EXPORT_VALUE`` in the
  environment, the value on stdin — e.g. ``xenstore-write "/tools/covey/$COVEY_EXPORT_PATH"
  "$COVEY_EXPORT_VALUE"``) and the Serf-style event handlers (``COVEY_EVENT`` and friends,
  the event as JSON on stdin).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

from covey.runtime.shell import run_shell

log = logging.getLogger("covey.exporters")

#: Commands waiting to run before new ones are dropped.
BACKLOG_LIMIT = 1000
#: Seconds one command may run before it is killed.
COMMAND_TIMEOUT = 30.0


def safe_name(name: str) -> str:
    """A file name for a node or key name (no '/', NUL or leading dot)."""
    out = name.replace("/", "_").replace("\x00", "_")
    return "_" + out if out.startswith(".") or not out else out


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old or the new file, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


class DirectoryExporter:
    """Mirrors facts, versions and settings into ``root`` (see the module docstring).

    Raises:
        OSError: ``root`` cannot be created (checked at construction).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.errors = 0

    def _guard(self, fn: Callable[..., object], *args: object) -> None:
        try:
            fn(*args)
        except OSError as exc:
            self.errors += 1
            log.warning("export to %s failed: %s", self.root, exc)

    def fact(self, node: str, key: str, value: str | None) -> None:
        """One fact of ``node`` set (or deleted when ``value`` is None)."""
        path = self.root / "nodes" / safe_name(node) / safe_name(key)
        if value is None:
            self._guard(_unlink, path)
        else:
            self._guard(write_atomic, path, value)

    def drop_node(self, node: str) -> None:
        """Every fact of ``node`` went away."""
        self._guard(shutil.rmtree, self.root / "nodes" / safe_name(node))

    def versions(self, local: str | None, lowest: str | None, nodes: Mapping[str, str]) -> None:
        """Rewrite the version files (only those whose content changed)."""
        self._put(self.root / "local_version", local)
        self._put(self.root / "lowest_version", lowest)
        vdir = self.root / "versions"
        wanted = {safe_name(n): v for n, v in nodes.items()}
        with contextlib.suppress(OSError):
            for old in vdir.iterdir():
                if old.name not in wanted and not old.name.startswith("."):
                    self._guard(_unlink, old)
        for name, version in wanted.items():
            self._put(vdir / name, version)

    def setting(self, name: str, value: str | None) -> None:
        """A cluster-wide setting changed."""
        self._put(self.root / "settings" / safe_name(name), value)

    def _put(self, path: Path, value: str | None) -> None:
        if value is None:
            self._guard(_unlink, path)
            return
        try:
            if path.read_text(encoding="utf-8") == value:
                return
        except (OSError, UnicodeDecodeError):
            pass
        self._guard(write_atomic, path, value)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class CommandRunner:
    """Runs shell commands one at a time, in submission order, with a bounded backlog.

    Args:
        what: a label for the logs ("export command", "event handler").
        base_env: variables every command gets besides the agent's environment.
    """

    def __init__(self, what: str, base_env: Mapping[str, str]) -> None:
        self.what = what
        self.base_env = dict(base_env)
        self.dropped = 0
        self.failed = 0
        self.ran = 0
        self._queue: asyncio.Queue[tuple[str, dict[str, str], bytes]] = asyncio.Queue()

    def submit(self, command: str, env: Mapping[str, str], stdin: str) -> None:
        """Queue ``command`` (dropped and counted beyond :data:`BACKLOG_LIMIT`)."""
        if self._queue.qsize() >= BACKLOG_LIMIT:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("%s backlog full: %d dropped so far", self.what, self.dropped)
            return
        self._queue.put_nowait((command, dict(env), stdin.encode()))

    async def run(self) -> None:
        """Work through the queue until cancelled (a task of the agent's TaskGroup)."""
        while True:
            command, env, stdin = await self._queue.get()
            await run_command(self, command, env, stdin)


async def run_command(
    runner: CommandRunner, command: str, env: Mapping[str, str], stdin: bytes
) -> tuple[int, str]:
    """Run one shell command; returns (exit status, stdout). Never raises but on cancel."""
    full_env = {**os.environ, **runner.base_env, **env}
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT):
            done = await run_shell(command, full_env, stdin)
    except TimeoutError:
        runner.failed += 1
        log.warning("%s %r killed after %.0f s", runner.what, command, COMMAND_TIMEOUT)
        return -9, "timed out"
    except OSError as exc:
        runner.failed += 1
        log.warning("%s %r cannot start: %s", runner.what, command, exc)
        return 127, str(exc)
    out, err = done.out, done.err
    runner.ran += 1
    code = done.code
    if code != 0:
        runner.failed += 1
        log.warning(
            "%s %r exited %d: %s", runner.what, command, code, err.decode(errors="replace")[-200:]
        )
    return code, out.decode(errors="replace")
