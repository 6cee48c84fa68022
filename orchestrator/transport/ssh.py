"""Run one script per device over SSH: connect (directly, through a gateway, or via the balena
proxy), write the script to the remote command's stdin, and stream its stdout back as bytes.

The transport moves bytes and never parses them. One ``asyncssh.SSHClientConnectionOptions``, with
keys and known_hosts read once (``credentials.py``), is reused for every connection (DESIGN 8);
``login.py`` opens and authenticates each hop under its deadlines.

Host keys are checked against known_hosts by default; an unknown host is an error, never a silent
trust-on-first-use. ``insecure_no_host_key_check`` turns checking off and logs a loud warning.

Proxy and hostvia routes share connections: many devices' sessions run as channels over a few
connections to the proxy host (see ``pool.py``). Jump routes share the connection to their gateway
among the targets behind it (closed once idle); direct routes connect per device.

Device problems never raise: ``run_script`` returns a ``ScriptResult`` whose ``error`` says what
went wrong, keeping whatever output had arrived.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field

from orchestrator.errors import TransportError
from orchestrator.models import Route
from orchestrator.transport.collector import OutputCollector
from orchestrator.transport.credentials import SSHSettings, load_client_keys, load_known_hosts
from orchestrator.transport.errors_map import (
    classify_error,
    hop_name,
    one_line,
    proxy_refusal,
)
from orchestrator.transport.fd_limit import raise_nofile_limit
from orchestrator.transport.login import Login
from orchestrator.transport.pool import ConnectionPool, SessionsRefused
from orchestrator.transport.sshlib import asyncssh

__all__ = [
    "SSHSettings",
    "ScriptResult",
    "SSHTransport",
    "classify_error",
    "load_client_keys",
    "load_known_hosts",
    "raise_nofile_limit",
]

STDERR_KEEP_BYTES = 64 * 1024
CLOSE_GRACE_S = 2.0
GATEWAY_LINGER_S = 5.0
"""An idle connection to a jump gateway is closed after this long without a target."""
POOLED_KINDS = frozenset({"proxy", "hostvia"})
"""Route kinds whose sessions share connections to the proxy host."""

_Channel = tuple["asyncssh.SSHClientChannel[bytes]", OutputCollector]
"""A command's channel and the collector its output goes to."""


@dataclass(frozen=True)
class ScriptResult:
    """What one device produced; carries its own failure instead of raising."""

    stdout: bytes
    stderr: bytes
    exit_status: int | None
    sent_at: float
    """time.time() when the script was written to the channel (0.0 if it never was)."""
    chunk_times: tuple[tuple[int, float], ...]
    """(cumulative stdout bytes after the chunk, time.time() at its arrival)."""
    truncated: bool
    """The client stopped reading at max_output_bytes and closed the channel."""
    error: TransportError | None
    """None on success (whatever the exit status); set on failure, partial stdout kept."""
    connect_s: float
    total_s: float

    @property
    def ok(self) -> bool:
        """The script ran and its output arrived (possibly truncated)."""
        return self.error is None


@dataclass
class _Progress:
    """Mutable state of one device's run, readable after a deadline cancels it."""

    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    chunk_times: list[tuple[int, float]] = field(default_factory=list)
    sent_at: float = 0.0
    truncated: bool = False
    exit_status: int | None = None
    connect_s: float = 0.0
    phase: str = "connecting"
    where: str = ""

    def set_phase(self, phase: str) -> None:
        self.phase = phase


class SSHTransport:
    """Runs scripts on devices over SSH with one shared, preloaded options object."""

    def __init__(self, settings: SSHSettings) -> None:
        self.settings = settings
        self.login = Login(settings)
        self.options = self.login.options
        self._pools: dict[tuple[str, str, int, str], ConnectionPool] = {}
        """Shared connections by (``proxy`` or ``gateway``, host, port, user)."""

    async def close(self) -> None:
        """Close the shared proxy and gateway connections (per-device ones are already closed)."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.close()

    def gateway_pool_for(self, gateway: Route) -> ConnectionPool:
        """Connections to a jump gateway, shared by the targets reached through it."""
        where = f"gateway {hop_name(gateway)}"
        return self._shared("gateway", gateway, where, linger_s=GATEWAY_LINGER_S)

    def pool_for(self, route: Route) -> ConnectionPool:
        """The connection pool of the proxy host ``route`` goes through (made on first use)."""
        hop = Route("direct", route.host, route.port, route.user)
        return self._shared("proxy", hop, hop_name(hop), linger_s=None)

    def _shared(
        self, kind: str, hop: Route, where: str, *, linger_s: float | None
    ) -> ConnectionPool:
        key = (kind, hop.host, hop.port, hop.user)
        pool = self._pools.get(key)
        if pool is None:

            async def connect() -> asyncssh.SSHClientConnection:
                return await self.login(hop, None, where)

            pool = ConnectionPool(
                connect, self.settings.proxy_sessions_per_connection, linger_s=linger_s
            )
            self._pools[key] = pool
        return pool

    async def run_script(
        self, route: Route, script: bytes, *, deadline_s: float | None = None
    ) -> ScriptResult:
        """Run ``script`` on the device behind ``route``; never raises for device problems."""
        deadline = self.settings.device_timeout_s if deadline_s is None else deadline_s
        progress = _Progress(where=hop_name(route))
        started = time.monotonic()
        task = asyncio.ensure_future(self._run(route, script, progress))
        error: TransportError | None = None
        try:
            done, _ = await asyncio.wait({task}, timeout=deadline)
        except asyncio.CancelledError:
            await _cancel(task)
            raise
        if not done:
            await _cancel(task)
            error = TransportError(
                "timeout",
                f"{progress.where}: device deadline of {deadline:g}s reached while "
                f"{progress.phase}; kept {len(progress.stdout)} bytes of output",
            )
        elif task.cancelled():
            error = TransportError("error", f"{progress.where}: the SSH session was cancelled")
        elif (exc := task.exception()) is not None:
            error = classify_error(exc, progress.where, received_bytes=self._sent(progress))
        else:
            error = proxy_refusal(route, progress.exit_status, len(progress.stdout))
        return ScriptResult(
            stdout=bytes(progress.stdout),
            stderr=bytes(progress.stderr),
            exit_status=progress.exit_status,
            sent_at=progress.sent_at,
            chunk_times=tuple(progress.chunk_times),
            truncated=progress.truncated,
            error=error,
            connect_s=progress.connect_s,
            total_s=time.monotonic() - started,
        )

    @staticmethod
    def _sent(progress: _Progress) -> int | None:
        return len(progress.stdout) if progress.sent_at else None

    async def _run(self, route: Route, script: bytes, progress: _Progress) -> None:
        if route.kind in POOLED_KINDS:
            await self._run_pooled(route, script, progress)
            return
        if route.kind == "jump" and route.via is not None and route.via.via is None:
            await self._run_through_gateway(route, route.via, script, progress)
            return
        started = time.monotonic()
        async with AsyncExitStack() as stack:
            conn = await self._connect_chain(route, stack, progress, is_target=True)
            progress.connect_s = time.monotonic() - started
            progress.phase = "running the script"
            await self._exec(conn, route, script, progress)

    async def _run_through_gateway(
        self, route: Route, gateway: Route, script: bytes, progress: _Progress
    ) -> None:
        """Reach the target over a tunnel of a shared connection to its gateway."""
        started = time.monotonic()
        where = f"{hop_name(route)} via gateway {hop_name(gateway)}"
        progress.where = where
        progress.phase = f"connecting to {where}"

        async def open_target(tunnel: asyncssh.SSHClientConnection) -> asyncssh.SSHClientConnection:
            return await self.login(route, tunnel, where, progress.set_phase)

        try:
            async with self.gateway_pool_for(gateway).session(open_target) as session:
                conn = session.channel
                try:
                    progress.connect_s = time.monotonic() - started
                    progress.phase = "running the script"
                    await self._exec(conn, route, script, progress)
                finally:
                    await _close_connection(conn)
        except SessionsRefused as exc:
            raise TransportError(
                "unreachable",
                f"{where}: the gateway refuses to forward connections ({one_line(exc.reason)}); "
                "enable TCP forwarding on the gateway or use another route",
            ) from None

    async def _connect_chain(
        self, route: Route, stack: AsyncExitStack, progress: _Progress, *, is_target: bool
    ) -> asyncssh.SSHClientConnection:
        """Connect every hop of ``route`` (gateways first) and return the last connection."""
        tunnel: asyncssh.SSHClientConnection | None = None
        where = hop_name(route) if is_target else f"gateway {hop_name(route)}"
        if route.kind == "jump" and route.via is not None:
            tunnel = await self._connect_chain(route.via, stack, progress, is_target=False)
            where = f"{where} via gateway {hop_name(route.via)}"
        progress.where = where
        progress.phase = f"connecting to {where}"
        conn = await self.login(route, tunnel, where, progress.set_phase)
        stack.push_async_callback(_close_connection, conn)
        return conn

    async def _run_pooled(self, route: Route, script: bytes, progress: _Progress) -> None:
        """Run the script as one channel of a shared connection to the proxy host."""
        started = time.monotonic()
        where = hop_name(route)
        progress.phase = f"connecting to {where}"

        async def open_channel(conn: asyncssh.SSHClientConnection) -> _Channel:
            return await self._open_command(conn, route, progress)

        try:
            async with self.pool_for(route).session(open_channel) as session:
                progress.connect_s = time.monotonic() - started
                progress.phase = "running the script"
                try:
                    await _exchange(*session.channel, script, progress)
                except (asyncssh.Error, OSError):
                    if not session.connection_lost:
                        raise
                lost = session.connection_lost and progress.exit_status is None
                if lost and not progress.truncated:
                    raise _lost_shared(where, len(progress.stdout))
        except SessionsRefused as exc:
            raise TransportError(
                "proxy",
                f"{where} ({route.command}): the proxy refused every session channel "
                f"({one_line(exc.reason)}); check its session limit (MaxSessions)",
            ) from None

    async def _exec(
        self, conn: asyncssh.SSHClientConnection, route: Route, script: bytes, progress: _Progress
    ) -> None:
        """Run the route's command with the script on stdin and collect its output."""
        await _exchange(*await self._open_command(conn, route, progress), script, progress)

    async def _open_command(
        self, conn: asyncssh.SSHClientConnection, route: Route, progress: _Progress
    ) -> _Channel:
        """Start the route's command on a new channel whose output goes into ``progress``."""
        cap = self.settings.max_output_bytes
        return await conn.create_session(
            lambda: OutputCollector(progress, cap, STDERR_KEEP_BYTES),
            route.command,
            encoding=None,
        )


async def _exchange(
    channel: asyncssh.SSHClientChannel[bytes],
    collector: OutputCollector,
    script: bytes,
    progress: _Progress,
) -> None:
    """Write the script to the command's stdin and wait until its output is all in."""
    try:
        progress.sent_at = time.time()
        try:
            channel.write(script)
            channel.write_eof()
        except BrokenPipeError:
            pass  # the command exited without reading stdin; its exit status tells why
        await collector.finished
        if not progress.truncated:
            progress.exit_status = channel.get_exit_status()
    finally:
        channel.close()


def _lost_shared(where: str, received: int) -> TransportError:
    return TransportError(
        "disconnected",
        f"{where}: the shared connection to the proxy was lost after {received} bytes of output; "
        "the proxy or the network dropped it",
    )


async def _cancel(task: asyncio.Future[None]) -> None:
    """Cancel ``task`` and wait for it to end, however it ends."""
    task.cancel()
    with suppress(BaseException):
        await task


async def _close_connection(conn: asyncssh.SSHClientConnection) -> None:
    conn.close()
    with suppress(asyncio.TimeoutError, OSError, asyncssh.Error):
        await asyncio.wait_for(conn.wait_closed(), CLOSE_GRACE_S)
