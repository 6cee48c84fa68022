"""Share a few SSH connections to one proxy host among many device sessions.

balena's SSH proxy serves each device as one exec channel (``host <uuid>``) of an ordinary SSH
connection, so one authenticated connection can carry many devices at once and a sweep pays one
handshake per ``sessions_per_connection`` devices instead of one per device.

Rules:

- A connection carries at most ``per_connection`` open channels (default 10, OpenSSH's
  ``MaxSessions``); when every connection is full, another one is opened.
- A proxy that refuses a channel (its own limit is lower) marks that connection full at the number
  of other sessions it holds, and the session is retried on another or a new connection: a refusal
  never fails a device, unless a fresh connection refuses even its first channel.
- A connection that dies is dropped from the pool; only the sessions whose channel was open on it
  fail (the transport reports them as ``disconnected``), later sessions get a new connection.
- With ``linger_s`` set, a connection that has carried no session for that long is closed (jump
  gateways: a sweep touches thousands, each for a few seconds); without it connections stay open
  until ``close()``.
- ``close()`` closes every connection (the transport calls it when the sweep ends).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from orchestrator.transport.sshlib import asyncssh

__all__ = ["ConnectionPool", "PooledSession", "SessionsRefused"]

T = TypeVar("T")
Connector = Callable[[], Awaitable[asyncssh.SSHClientConnection]]
ChannelOpener = Callable[[asyncssh.SSHClientConnection], Awaitable[T]]

REFUSAL_CODES = frozenset(
    {asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, asyncssh.OPEN_RESOURCE_SHORTAGE}
)
"""Channel open failures that mean "this connection is full" (OpenSSH MaxSessions answers
``administratively prohibited``)."""
CLOSE_GRACE_S = 2.0


class SessionsRefused(Exception):
    """Fresh connections to the proxy refused even their first channel."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(eq=False)
class _Shared:
    """One pooled connection (still connecting while ``ready`` is not done)."""

    ready: asyncio.Task[asyncssh.SSHClientConnection]
    capacity: int
    reserved: int = 0
    """Sessions that picked this connection (opening or open)."""
    open: int = 0
    """Channels open on it right now."""
    served: int = 0
    idle_timer: asyncio.TimerHandle | None = None

    @property
    def dead(self) -> bool:
        if not self.ready.done():
            return False
        if self.ready.cancelled() or self.ready.exception() is not None:
            return True
        return self.ready.result().is_closed()

    @property
    def has_room(self) -> bool:
        return self.reserved < self.capacity and not self.dead


@dataclass
class PooledSession(Generic[T]):
    """A channel on a shared connection; ``connection_lost`` tells a dead connection apart."""

    channel: T
    _shared: _Shared = field(repr=False)

    @property
    def connection_lost(self) -> bool:
        """The shared connection carrying this channel has closed."""
        return self._shared.dead


class ConnectionPool:
    """Connections to one SSH host shared by many sessions (create inside the event loop)."""

    def __init__(
        self,
        connect: Connector,
        per_connection: int = 10,
        *,
        max_lone_refusals: int = 2,
        linger_s: float | None = None,
    ):
        if per_connection < 1:
            raise ValueError("sessions per connection must be at least 1")
        self._connect = connect
        self._linger_s = linger_s
        self.per_connection = per_connection
        self._max_lone_refusals = max_lone_refusals
        self._connections: list[_Shared] = []
        self._retired: set[_Shared] = set()
        self.connections_opened = 0
        self.refusals = 0

    @property
    def live_connections(self) -> int:
        """Connections in the pool that are connecting or open."""
        return sum(1 for shared in self._connections if not shared.dead)

    @asynccontextmanager
    async def session(self, open_channel: ChannelOpener[T]) -> AsyncIterator[PooledSession[T]]:
        """Open a channel with ``open_channel(conn)`` on a pooled connection, for the block.

        Connect errors (auth, host key, timeouts) propagate as they would for a private
        connection; channel refusals and connections that died before the channel opened are
        retried on another connection.
        """
        shared, channel = await self._open(open_channel)
        try:
            yield PooledSession(channel, shared)
        finally:
            shared.open -= 1
            shared.reserved -= 1
            if shared not in self._connections:
                self._retire(shared)
            elif shared.reserved == 0 and self._linger_s is not None:
                loop = asyncio.get_running_loop()
                shared.idle_timer = loop.call_later(self._linger_s, self._close_idle, shared)

    def _close_idle(self, shared: _Shared) -> None:
        shared.idle_timer = None
        if shared.reserved == 0:
            self._discard(shared)

    async def _open(self, open_channel: ChannelOpener[T]) -> tuple[_Shared, T]:
        lone_refusals = 0
        while True:
            shared = self._pick()
            shared.reserved += 1
            if shared.idle_timer is not None:
                shared.idle_timer.cancel()
                shared.idle_timer = None
            try:
                conn = await asyncio.shield(shared.ready)
                channel = await open_channel(conn)
            except asyncssh.ChannelOpenError as exc:
                shared.reserved -= 1
                if shared.dead:
                    continue
                if exc.code not in REFUSAL_CODES:
                    raise
                self.refusals += 1
                if shared.reserved == 0:
                    lone_refusals += 1
                    self._discard(shared)
                    if lone_refusals >= self._max_lone_refusals:
                        raise SessionsRefused(exc.reason) from None
                # full at the sessions it holds; concurrent refusals lower it further
                shared.capacity = min(shared.capacity, shared.reserved)
                continue
            except BaseException:
                shared.reserved -= 1
                if shared.ready.done() and shared.dead:
                    self._discard(shared)
                    if not shared.ready.cancelled() and shared.ready.exception() is None:
                        continue  # the connection died before our channel opened: retry
                raise
            shared.open += 1
            shared.served += 1
            return shared, channel

    def _pick(self) -> _Shared:
        """The first connection with room (filling connections up), or a new one."""
        for shared in list(self._connections):
            if shared.dead:
                self._discard(shared)
            elif shared.has_room:
                return shared
        shared = _Shared(asyncio.ensure_future(self._connect()), self.per_connection)
        shared.ready.add_done_callback(_consume_exception)
        self._connections.append(shared)
        self.connections_opened += 1
        return shared

    def _discard(self, shared: _Shared) -> None:
        """Take ``shared`` out of rotation; it closes once its last session ends."""
        if shared in self._connections:
            self._connections.remove(shared)
        self._retire(shared)

    def _retire(self, shared: _Shared) -> None:
        if shared.reserved > 0:
            self._retired.add(shared)
            return
        self._retired.discard(shared)
        if shared.ready.done() and not shared.dead:
            shared.ready.result().close()

    async def close(self) -> None:
        """Close every connection (idle or not) and stop pending connects."""
        connections = [*self._connections, *self._retired]
        self._connections, self._retired = [], set()
        for shared in connections:
            if shared.idle_timer is not None:
                shared.idle_timer.cancel()
            if not shared.ready.done():
                shared.ready.cancel()
        for shared in connections:
            with suppress(BaseException):
                conn = await shared.ready
                conn.close()
                await asyncio.wait_for(conn.wait_closed(), CLOSE_GRACE_S)


def _consume_exception(task: asyncio.Task[asyncssh.SSHClientConnection]) -> None:
    """Mark a failed connect as seen (its waiters got the error; nobody else will read it)."""
    if not task.cancelled():
        task.exception()
