"""The agent's shell-command runner (``covey.runtime.shell``), with real ``/bin/sh`` children."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from covey.runtime import shell
from covey.runtime.shell import ShellResult, run_shell

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


async def _until(pred: object, seconds: float) -> bool:
    assert callable(pred)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return True
        await asyncio.sleep(0.01)
    return bool(pred())


@pytest.fixture(params=["pidfd", "asyncio"])
def runner(request: pytest.FixtureRequest) -> object:
    """Both ways of running a command: the pidfd path, and the fallback without one."""
    if request.param == "pidfd":
        if not hasattr(os, "pidfd_open"):
            pytest.skip("os.pidfd_open is missing here (not Linux, or a kernel before 5.3)")
        return run_shell

    async def fallback(
        command: str, env: dict[str, str], stdin: bytes = b"", *, keep: int = shell.KEEP
    ) -> ShellResult:
        return await shell._run_asyncio(command, env, stdin, keep)

    return fallback


async def test_status_output_environment_and_stdin(runner: object) -> None:
    assert callable(runner)
    got = await runner(
        'read line; echo "got $line from $WHO"; echo oops >&2; exit 3',
        {**ENV, "WHO": "covey"},
        b"hello\n",
    )
    assert (got.code, got.out, got.err) == (3, b"got hello from covey\n", b"oops\n")
    assert (got.out_size, got.err_size) == (len(got.out), 5)


async def test_a_large_stdin_arrives_whole(runner: object) -> None:
    assert callable(runner)
    payload = bytes(range(256)) * 4096  # 1 MiB: many times what a pipe holds
    got = await runner("wc -c", ENV, payload)
    assert got.code == 0
    assert int(got.out) == len(payload)


async def test_a_command_that_ignores_its_stdin_does_not_hang(runner: object) -> None:
    assert callable(runner)
    async with asyncio.timeout(20):
        got = await runner("exec 0<&-; echo done", ENV, b"x" * (4 << 20))
    assert (got.code, got.out) == (0, b"done\n")


async def test_output_is_kept_up_to_the_bound_and_counted_whole(runner: object) -> None:
    assert callable(runner)
    script = "head -c 300000 /dev/zero; head -c 200000 /dev/zero >&2; echo last >&2"
    got = await runner(script, ENV, keep=1000)
    assert got.code == 0
    assert (got.out, got.out_size) == (b"\0" * 1000, 300000)
    assert got.err_size == 200005
    assert len(got.err) == 1000 and got.err.endswith(b"\0last\n")  # stderr: its tail


async def test_a_killed_command_reports_the_signal(runner: object) -> None:
    assert callable(runner)
    got = await runner("kill -9 $$", ENV)
    assert got.code == -9


async def test_cancelling_kills_the_whole_process_group(runner: object, tmp_path: Path) -> None:
    assert callable(runner)
    pidfile = tmp_path / "pid"
    # A grandchild in the background: the shell waits for it, so would we.
    task = asyncio.ensure_future(
        runner(f"sleep 300 & echo $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; wait", ENV)
    )
    assert await _until(pidfile.exists, 20), "the command never started its grandchild"
    grandchild = int(pidfile.read_text())
    assert not _gone(grandchild)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _until(lambda: _gone(grandchild), 20), "the grandchild outlived the cancel"


async def test_many_commands_at_once_leave_no_descriptor_behind() -> None:
    if not hasattr(os, "pidfd_open"):
        pytest.skip("os.pidfd_open is missing here (not Linux, or a kernel before 5.3)")
    before = len(os.listdir("/proc/self/fd"))
    got = await asyncio.gather(*(run_shell(f"echo {i}", ENV) for i in range(50)))
    assert [int(g.out) for g in got] == list(range(50))
    assert len(os.listdir("/proc/self/fd")) <= before
