"""The dashboard's routes on a real agent: its three files, the redirects, nothing else.

The page itself is tested in a browser (test_dashboard.py); here: content types and
headers, that no request reaches a file outside ``covey/ui`` (however it spells ``..``),
that the files ship with the package and that they load nothing from elsewhere.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import tomllib
from collections.abc import AsyncIterator
from fnmatch import fnmatch
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from covey.runtime import Agent, AgentConfig
from covey.runtime.http.ui import FILES, ui_file
from covey.runtime.localcluster import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[int]:
    http = free_port()
    config = AgentConfig(
        name="ui",
        cluster="ui",
        bind=("127.0.0.1", free_port()),
        interfaces=("127.0.0.1",),
        discovery=False,  # alone, and no beacon on any interface
        keys=(Fernet.generate_key(),),
        control=tmp_path / "ui.sock",
        http=("127.0.0.1", http),
    )
    async with Agent(config):
        yield http


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` exactly as written (http.client does not normalise it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        conn.close()


async def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(_get, port, path)


async def test_the_page_and_its_files_are_served(port: int) -> None:
    status, headers, body = await get(port, "/ui/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-cache"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert body == ui_file("index.html") and b'<script type="module" src="app.js">' in body
    kinds = {n: "application/javascript" for n in FILES if n.endswith(".js")}
    assert len(kinds) >= 2
    for name, kind in {**kinds, "style.css": "text/css"}.items():
        status, headers, body = await get(port, f"/ui/{name}")
        assert status == 200, name
        assert headers["Content-Type"] == f"{kind}; charset=utf-8"
        assert body == ui_file(name) and len(body) > 1000


async def test_root_and_ui_redirect_to_the_page(port: int) -> None:
    for path, target in (("/", "ui/"), ("/ui", "/ui/")):
        status, headers, _ = await get(port, path)
        assert (status, headers["Location"]) == (302, target), path


@pytest.mark.parametrize(
    "path",
    [
        "/ui/pyproject.toml",
        "/ui/../pyproject.toml",
        "/ui/%2e%2e/http/ui.py",
        "/ui/..%2f..%2fpyproject.toml",
        "/ui/%2E%2E%2F%2E%2E%2Fruntime%2Fhttp%2Fui.py",
        "/ui//etc/passwd",
        "/ui/app.js/",
        "/ui/app.js%00.css",
        "/ui/APP.JS",
        "/ui/index.html/..",
    ],
)
async def test_nothing_else_is_served(port: int, path: str) -> None:
    status, headers, body = await get(port, path)
    assert status in (404, 400), (path, status)
    assert headers["Content-Type"].startswith("application/json")
    assert "error" in json.loads(body)


async def test_the_openapi_document_lists_the_dashboard(port: int) -> None:
    _, _, body = await get(port, "/v1/openapi.json")
    paths = json.loads(body)["paths"]
    assert paths["/ui/"]["get"]["responses"]["200"]["content"].keys() == {"text/html"}
    content = paths["/ui/app.js"]["get"]["responses"]["200"]["content"]
    assert content.keys() == {"application/javascript"}
    assert "302" in paths["/"]["get"]["responses"]


def test_the_files_ship_with_the_package() -> None:
    """Every file the route serves matches the package data of pyproject.toml (so a wheel
    holds it), and a name outside FILES is refused before any file is opened."""
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = data["tool"]["setuptools"]["package-data"]["covey"]
    for name in FILES:
        assert any(fnmatch(f"ui/{name}", g) for g in globs), name
        assert ui_file(name)
    with pytest.raises(KeyError):
        ui_file("../__init__.py")


def test_the_page_loads_nothing_from_elsewhere() -> None:
    """No CDN, no web font, no absolute URL: every reference is one of the page's files
    or the agent's own API (relative)."""
    html = ui_file("index.html").decode()
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert refs, "no references found: the pattern is wrong"
    for ref in refs:
        assert ref in FILES or ref.startswith("../v1/") or ref == "data:,", ref
    for name in FILES:
        text = ui_file(name).decode()
        for module in re.findall(r'\bfrom\s+"([^"]+)"', text):
            assert module.startswith("./") and module[2:] in FILES, (name, module)
        assert not re.search(r"(?i)\b(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), name
        assert "@import" not in text and "@font-face" not in text, name
