"""Where control sockets live, and how the CLI finds one it can trust.

Every agent has a local control socket:

* ``--control PATH`` when given;
* else ``DATA_DIR/covey.sock`` when the agent has a data directory;
* else ``RUNTIME/CLUSTER-NAME.sock`` in the runtime directory.

The runtime directory is ``$XDG_RUNTIME_DIR/covey`` when that is set, ``/run/covey`` for
root, else ``/tmp/covey-UID``. It is created mode 0700 and used only if it is owned by the
user and writable by nobody else, so another user cannot plant a socket there. An agent
whose socket is elsewhere (a data directory, ``--control``) puts a symbolic link to it in the
runtime directory, named the same way, so that plain ``covey members`` finds "the only agent
running" wherever it keeps its socket. Sockets are named by cluster and node, so two
clusters on one host that use the same node names do not collide.

The CLI never globs a world-writable directory such as ``/tmp``.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

#: The socket's name inside a data directory.
DATA_DIR_SOCKET = "covey.sock"


class UntrustedPath(Exception):
    """A directory that is not the user's own or that others may write to."""


def runtime_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The runtime directory of this user (see the module docstring); not created here."""
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "covey"
    if os.geteuid() == 0:
        return Path("/run/covey")
    return Path(f"/tmp/covey-{os.geteuid()}")


def socket_name(cluster: str, name: str) -> str:
    """The file name of an agent's socket (or link) in the runtime directory."""
    safe = [s.replace("/", "_").replace("\x00", "_") for s in (cluster, name)]
    return f"{safe[0]}-{safe[1]}.sock"


def check_trusted(directory: Path) -> None:
    """Raise :class:`UntrustedPath` unless ``directory`` is a real directory (not a link),
    writable by its owner only, and owned by this user or root — or by another user but
    inside a directory that only root can write (``/run/covey`` made by systemd's
    ``RuntimeDirectory=`` for the service user: only root could have made it theirs)."""
    try:
        info = os.lstat(directory)
    except OSError as exc:
        raise UntrustedPath(f"{directory}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UntrustedPath(f"{directory} is not a directory")
    if info.st_uid not in (os.geteuid(), 0):
        try:
            parent = os.lstat(directory.parent)
        except OSError:
            parent = None
        root_made = (
            parent is not None
            and parent.st_uid == 0
            and not parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        )
        if not root_made:
            raise UntrustedPath(f"{directory} belongs to another user (uid {info.st_uid})")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UntrustedPath(f"{directory} is writable by others (mode {info.st_mode & 0o777:o})")


def ensure_runtime_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The runtime directory, created 0700 if missing, checked with :func:`check_trusted`."""
    directory = runtime_dir(environ)
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700, parents=True)
    check_trusted(directory)
    return directory


def link_socket(socket_path: Path, cluster: str, name: str) -> Path | None:
    """Point ``RUNTIME/CLUSTER-NAME.sock`` at ``socket_path`` (a socket kept elsewhere);
    the link made, or None when the runtime directory cannot be used (never fatal)."""
    try:
        directory = ensure_runtime_dir()
    except (OSError, UntrustedPath):
        return None
    link = directory / socket_name(cluster, name)
    if link == socket_path:
        return None
    with contextlib.suppress(OSError):
        if link.is_symlink() or not link.exists():
            link.unlink(missing_ok=True)
            link.symlink_to(socket_path.absolute())
            return link
    return None


def unlink_link(link: Path | None, socket_path: Path) -> None:
    """Remove ``link`` if it still points at ``socket_path`` (never another agent's)."""
    if link is None:
        return
    with contextlib.suppress(OSError):
        if link.is_symlink() and Path(os.readlink(link)) == socket_path.absolute():
            link.unlink()


def candidates(environ: Mapping[str, str] | None = None, name: str | None = None) -> list[Path]:
    """The sockets (or links to them) in the runtime directory, of agent ``name`` if given.

    Only a trusted runtime directory is listed (:func:`check_trusted`); a dangling link (its
    agent has gone) is left out.
    """
    directory = runtime_dir(environ)
    try:
        check_trusted(directory)
    except UntrustedPath:
        return []
    found = []
    for entry in sorted(directory.glob("*.sock")):
        if name is not None and not entry.name.endswith(f"-{name}.sock"):
            continue
        if entry.exists():  # follows a link: false when its socket is gone
            found.append(entry)
    return found
