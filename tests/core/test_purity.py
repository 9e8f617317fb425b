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
FORBIDDEN = {"asyncio", "socket", "time", "random", "os", "threading", "subprocess", "sqlite3"}


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
    files = sorted(CORE_DIR.rglob("*.py"))
    assert len(files) >= 30  # the scan really walked every core subpackage
    assert {f.parent.name for f in files} >= {"core", "membership", "election", "wire"}
    offenders = {
        str(f.relative_to(CORE_DIR)): sorted(_imported_roots(f) & (FORBIDDEN | {"__import__"}))
        for f in files
    }
    # One reasoned exception: Fernet IVs come from the OS CSPRNG (a seeded simulation rng
    # must never make nonces), and no protocol decision depends on them.
    assert offenders.pop("crypto/fernet.py") == ["os"]
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_only_os_use_in_the_core_is_urandom() -> None:
    tree = ast.parse((CORE_DIR / "crypto" / "fernet.py").read_text())
    used = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == "os"
    }
    assert used == {"urandom"}


def test_the_scan_would_notice(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom random import choice\nimport asyncio.tasks\n")
    assert _imported_roots(bad) >= {"time", "random", "asyncio"}


def test_node_requires_rng_and_now_keywords() -> None:
    params = inspect.signature(Node.__init__).parameters
    for name in ("rng", "now"):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default is inspect.Parameter.empty
