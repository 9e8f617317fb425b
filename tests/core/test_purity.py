"""The core is pure: no IO, no clock, no hidden randomness."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import covey.core
from covey.core import Node

CORE_DIR = Path(covey.core.__file__).parent
FORBIDDEN = {"asyncio", "socket", "time", "random"}


def test_importing_the_core_loads_no_io_modules() -> None:
    code = (
        "import sys, covey.core\n"
        "print(','.join(m for m in ('asyncio', 'socket') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            roots.add("__import__")
    return roots


def test_no_core_module_imports_io_clock_or_random() -> None:
    files = sorted(CORE_DIR.glob("*.py"))
    assert len(files) >= 10  # the scan really looked at the core
    offenders = {f.name: sorted(_imported_roots(f) & (FORBIDDEN | {"__import__"})) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_scan_would_notice(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom random import choice\nimport asyncio.tasks\n")
    assert _imported_roots(bad) >= {"time", "random", "asyncio"}


def test_node_requires_rng_and_now_keywords() -> None:
    params = inspect.signature(Node.__init__).parameters
    for name in ("rng", "now"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default is inspect.Parameter.empty
