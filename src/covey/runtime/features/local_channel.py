"""The local channel as a feature: same-host peers over unix sockets (``--local-channel``).

The channel itself is :class:`covey.runtime.net.local_channel.LocalChannel`; this feature
makes it from the configuration (in the runtime directory's ``local-<host key>``
folder), lets the agent open it beside its TCP stream port (``open``), keeps its own
socket files checked while the agent runs, closes it at the end, and shows its counters in
``covey info`` under ``local_channel``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from covey.core import Address
from covey.runtime.config.model import AgentConfig
from covey.runtime.features.base import Feature
from covey.runtime.net.local_channel import LocalChannel, host_key

if TYPE_CHECKING:
    from covey.runtime.context import AgentContext


class LocalChannelFeature(Feature):
    """Owns the agent's :class:`LocalChannel` when ``local_channel`` is on (else nothing)."""

    name = "local_channel"

    def __init__(self, config: AgentConfig, address: Address) -> None:
        self.channel: LocalChannel | None = None
        if config.local_channel:
            from covey.runtime.control.paths import runtime_dir

            directory = runtime_dir() / f"local-{host_key()}"
            self.channel = LocalChannel(directory, config.cluster, address, config.stream_timeout)

    def start(self, ctx: AgentContext) -> None:
        if self.channel is not None:
            ctx.spawn(self.channel.run_checks())

    def stop(self) -> None:
        if self.channel is not None:
            self.channel.close()

    def info(self) -> Mapping[str, object]:
        return {} if self.channel is None else self.channel.info()
