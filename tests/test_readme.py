"""The README, run: its runnable shell blocks pass, its other commands exist, and its demo
transcript has the shape of a real run.

* A shell block right after a ``<!-- runnable -->`` line is run, in order with the others,
  as one ``bash -euo pipefail`` script in a fresh directory with this covey first on PATH
  (everything it starts is on loopback). Every process the script leaves behind is
  stopped by its PID afterwards (found by its session), and the test fails if there was one.
* Every other shell block is a reference with placeholders (``...``, ``[--json]``, real
  hosts' addresses): each ``covey`` command line in it must name a real command, and each
  ``--flag`` it uses must be in that command's ``--help``.
* The block after ``<!-- demo-transcript -->`` must match a real ``covey demo``, line for
  line, once numbers, addresses and node names are written as placeholders (the timeline's
  highlight lines vary in number from run to run and are compared by shape only).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import psutil

README = Path(__file__).resolve().parents[1] / "README.md"
BIN = Path(sys.executable).parent
BLOCK = re.compile(r"(<!-- (runnable|demo-transcript) -->\n)?```(sh|text)\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str]]:
    """(kind, body) of every ``sh``/``text`` block: runnable, transcript, reference, text."""
    out = []
    for m in BLOCK.finditer(README.read_text()):
        marker, lang, body = m.group(2), m.group(3), m.group(4)
        out.append((marker or ("reference" if lang == "sh" else "text"), body))
    return out


def _env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    return {**base, "PATH": f"{BIN}{os.pathsep}{base.get('PATH', '')}"}


def _session_pids(sid: int) -> list[int]:
    """Processes (not zombies) still in session ``sid``."""
    out = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (OSError, psutil.Error):
            continue  # gone meanwhile
    return out


def test_the_runnable_blocks_pass(tmp_path: Path) -> None:
    script = "\n".join(body for kind, body in _blocks() if kind == "runnable")
    assert script.count("covey ") >= 10, "the README lost its runnable quick start"
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        left = _session_pids(proc.pid)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    logs = "".join(p.read_text() for p in sorted(tmp_path.glob("*.log")))
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}\nlogs:\n{logs}"
    assert not left, f"the README's blocks left processes running: {left}"
    # What the blocks show really happened: two members alive, a fact shared, files made.
    assert re.search(r"web1\s.*alive", out) and re.search(r"web2\s.*alive", out), out
    assert "Type=notify" in (tmp_path / "covey.service").read_text()
    assert (tmp_path / "covey.1").read_text().startswith(".TH")


@cache
def _help(command: tuple[str, ...]) -> str | None:
    run = subprocess.run(
        [sys.executable, "-m", "covey", *command, "--help"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )
    return run.stdout if run.returncode == 0 else None


def _command_lines(body: str) -> list[list[str]]:
    """Each ``covey ...`` invocation in a block, as words, comments and ``$(...)`` cut."""
    lines = []
    for raw in body.replace("\\\n", " ").splitlines():
        text = raw.split("  #")[0].split(" # ")[0]
        for part in re.split(r";|&&|\$\(|\)", text):
            words = part.split()
            if "covey" in words:
                lines.append(words[words.index("covey") + 1 :])
    return lines


def test_every_reference_command_exists_with_its_flags() -> None:
    checked = 0
    for kind, body in _blocks():
        if kind not in ("reference", "runnable"):
            continue
        for words in _command_lines(body):
            # The command path: the leading words that are not flags or placeholders.
            path: list[str] = []
            for w in words:
                if w.startswith(("-", "[", '"', "$", "...")) or not re.fullmatch(r"[a-z-]+", w):
                    break
                if _help((*path, w)) is None:
                    break
                path.append(w)
            assert path, f"not a covey command: covey {' '.join(words)}"
            shown = _help(tuple(path))
            assert shown is not None
            for w in words:
                flag = re.match(r"\[?(--[a-z][a-z-]*)", w)
                if flag:
                    assert flag.group(1) in shown, f"covey {' '.join(path)}: no {flag.group(1)}"
            checked += 1
    assert checked >= 30, checked


def _shape(line: str) -> str:
    line = re.sub(r"127\.0\.0\.1:\d+", "ADDR", line)
    line = re.sub(r"\bn\d\b", "NODE", line)
    line = re.sub(r"\b[0-9a-f]{8}\b", "ID", line)
    line = re.sub(r"\d+(\.\d+)?", "#", line)
    return re.sub(r"\+ +#", "+#", line)  # "+ 9.78 s" and "+10.05 s" are the same shape


def test_the_demo_transcript_matches_a_real_run() -> None:
    transcript = next(body for kind, body in _blocks() if kind == "demo-transcript")
    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "covey", "demo"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    print(f"\ncovey demo took {time.monotonic() - start:.1f} s")
    real, shown = run.stdout.splitlines(), transcript.splitlines()
    # No colour when not on a terminal, and every line fits 80 columns.
    assert "\x1b[" not in run.stdout and max(map(len, real)) <= 80

    def steps(lines: list[str]) -> list[str]:
        return [_shape(x) for x in lines if not x.startswith("    +")]

    def highlights(lines: list[str]) -> set[str]:
        return {_shape(x) for x in lines if x.startswith("    +")}

    assert steps(shown) == steps(real)
    kinds = ("elected leader", "fences", "failed (first seen by", "left (first seen by")
    for kind in kinds:
        assert any(kind in x for x in real), f"the real run's timeline has no {kind!r}"
        assert any(kind in x for x in shown), f"the README's timeline has no {kind!r}"
    # Every highlight the README shows is one a real run prints (same shape).
    possible = highlights(real) | {_shape("    +#.## s  NODE: delivery ID complete")}
    assert highlights(shown) <= possible, highlights(shown) - possible
