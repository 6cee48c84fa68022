"""SSH connections through a gateway connection, their packets sent once per event-loop turn.

asyncssh writes every packet of a connection to its transport on its own, and once keys are
set it puts an empty ``MSG_IGNORE`` packet before every packet it sends. Through a gateway
each of those writes becomes one more packet of the gateway connection (a channel data
message, with its own ``MSG_IGNORE`` in front): four encrypted packets on the gateway link
per packet the target sees. ``GatewayTunnel`` hands the target connection a transport that
gathers what it writes during one turn of the event loop and passes it to the gateway channel
as one write, so a packet and its ``MSG_IGNORE`` travel in one channel message. The bytes and
their order are unchanged.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

from orchestrator.transport.sshlib import asyncssh


class _GatheringTransport:
    """The transport a target connection writes to: the gateway channel, writes gathered."""

    def __init__(self, channel: asyncssh.SSHTCPChannel[bytes]) -> None:
        self._channel = channel
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            with suppress(ConnectionError):  # the gateway channel closed: as a closed socket
                self._channel.write(data)

    def abort(self) -> None:
        self._flush()
        self._channel.abort()

    def close(self) -> None:
        self._flush()
        self._channel.close()

    def is_closing(self) -> bool:
        return self._channel.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._channel.get_extra_info(name, default)


class _TargetSession(asyncssh.SSHTCPSession[bytes]):
    """Feeds the gateway channel's events to the target connection it carries."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:  # type: ignore[override]
        self.target.connection_made(_GatheringTransport(chan))

    def connection_lost(self, exc: Exception | None) -> None:
        self.target.connection_lost(exc)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.target.data_received(data, datatype)

    def eof_received(self) -> bool:
        return bool(self.target.eof_received())

    def pause_writing(self) -> None:
        self.target.pause_writing()

    def resume_writing(self) -> None:
        self.target.resume_writing()


class GatewayTunnel:
    """What ``asyncssh.connect(tunnel=...)`` needs to open target connections over ``gateway``."""

    def __init__(self, gateway: asyncssh.SSHClientConnection) -> None:
        self.gateway = gateway

    async def create_connection(
        self, session_factory: Any, remote_host: str, remote_port: int
    ) -> tuple[asyncssh.SSHTCPChannel[bytes], Any]:
        """Open a channel to ``remote_host:remote_port`` carrying a new target connection."""
        channel, session = await self.gateway.create_connection(
            lambda: _TargetSession(session_factory()), remote_host, remote_port
        )
        return channel, session.target
