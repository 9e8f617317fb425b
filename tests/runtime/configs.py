"""One factory for the in-process agents' configurations of the runtime tests.

Each test module used to carry its own ``make_config`` fixture: the same dozen lines with
another cluster name. :func:`config_factory` makes one: every agent of it shares a fresh
key and a free multicast port on 127.0.0.1 (beacons stay on the loopback interface) and
binds its own free port.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.fernet import Fernet

from covey.runtime.config.model import AgentConfig
from covey.runtime.localcluster import free_port

#: A setting given as a function of the agent's name and the group port, made per agent.
PerAgent = Callable[[str, int], object]


def config_factory(
    cluster: str, group: str = "239.192.77.2", **defaults: object | PerAgent
) -> Callable[..., AgentConfig]:
    """``make(name, **settings)`` for agents of ``cluster``; ``defaults`` hold the module's
    own settings, where a callable is called with (name, group port) for each agent."""
    key = Fernet.generate_key()
    group_port = free_port()

    def make(name: str, **kw: object) -> AgentConfig:
        base: dict[str, object] = {
            "name": name,
            "cluster": cluster,
            "bind": ("127.0.0.1", free_port()),
            "interfaces": ("127.0.0.1",),
            "multicast": (group, group_port),
            "keys": (key,),
        }
        for field, value in defaults.items():
            base[field] = value(name, group_port) if callable(value) else value
        base.update(kw)
        return AgentConfig(**base)  # type: ignore[arg-type]

    return make
