"""SSH stand-ins for route tests: a balena SSH proxy and a plain device sshd (real asyncssh servers).

:class:`ProxyStandIn` stands in for balena's SSH proxy (``ssh.balena-devices.com``), which cannot
be reached from here. It implements the proxy's exec verbs:

- ``host <uuid>``: run the script arriving on stdin in a real ``/bin/sh -s``;
  ``host <uuid> <command...>``: run ``/bin/sh -c '<command...>'``;
- ``hostvia <gateway_uuid> <target_uuid> [<ip>]``: reach the target through a gateway, which must
  be registered and online (connected to the VPN); the target may be offline.

Each command runs with ``ORCH_TEST_UUID=<uuid>`` (plus ``ORCH_TEST_VIA``/``ORCH_TEST_IP`` for
hostvia), or is forwarded to a registered device SSH server. An unknown or offline uuid ends with
exit status 255 and no output, like the real proxy. Like OpenSSH ``MaxSessions`` (default 10), a
connection may hold at most ``max_sessions`` open sessions: one more gets a channel open failure.

:class:`DeviceShellServer` is a small device sshd (``root`` on a chosen port) that runs exec
commands in ``/bin/sh`` and accepts direct-tcpip channels, so it serves as a direct target and as
a jump host.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncssh

Handler = Callable[[Any, Any, Any], Awaitable[None]]
_HOST_KEY: asyncssh.SSHKey | None = None


def host_key() -> asyncssh.SSHKey:
    """One generated server host key shared by every stand-in in the process."""
    global _HOST_KEY
    if _HOST_KEY is None:
        _HOST_KEY = asyncssh.generate_private_key("ssh-ed25519")
    return _HOST_KEY


@dataclass(frozen=True)
class ForwardTarget:
    """A device SSH server the proxy forwards ``host``/``hostvia`` sessions to."""

    host: str
    port: int
    username: str
    client_key: asyncssh.SSHKey


@dataclass
class RegisteredDevice:
    uuid: str
    online: bool = True
    """Connected to the VPN: reachable with ``host`` and usable as a ``hostvia`` gateway."""
    forward: ForwardTarget | None = None


async def _pump(reader: Any, writer: Any, eof: bool) -> None:
    """Copy ``reader`` into ``writer`` until EOF (then pass EOF on); a vanished peer ends it."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if eof:
            writer.write_eof()
    except (BrokenPipeError, ConnectionResetError, asyncssh.Error):
        pass


async def run_shell(
    argv: list[str], env: dict[str, str], stdin: Any, stdout: Any, stderr: Any
) -> int:
    """Run ``argv`` locally with the SSH channel's streams attached; returns its exit status."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
    )
    assert proc.stdin and proc.stdout and proc.stderr
    feeder = asyncio.ensure_future(_pump(stdin, proc.stdin, eof=True))
    try:
        await asyncio.gather(
            _pump(proc.stdout, stdout, eof=False),
            _pump(proc.stderr, stderr, eof=False),
        )
        return await proc.wait()
    finally:
        feeder.cancel()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def forward_session(
    target: ForwardTarget, command: str | None, stdin: Any, stdout: Any, stderr: Any
) -> int:
    """Run ``command`` (default ``sh -s``) on a device SSH server, streams attached."""
    async with asyncssh.connect(
        target.host,
        target.port,
        username=target.username,
        client_keys=[target.client_key],
        known_hosts=None,
    ) as conn:
        proc = await conn.create_process(command or "sh -s", encoding=None)
        feeder = asyncio.ensure_future(_pump(stdin, proc.stdin, eof=True))
        try:
            await asyncio.gather(
                _pump(proc.stdout, stdout, eof=False),
                _pump(proc.stderr, stderr, eof=False),
            )
            await proc.wait_closed()
        finally:
            feeder.cancel()
        return proc.exit_status if proc.exit_status is not None else 255


class _KeyAuthServer(asyncssh.SSHServer):
    """Public-key auth for one username; counts this connection's open sessions."""

    def __init__(self, username: str, keys: list[asyncssh.SSHKey], max_sessions: int) -> None:
        self._username = username
        self._keys = {key.public_data for key in keys}
        self._max_sessions = max_sessions
        self.open_sessions = 0

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self._username and key.public_data in self._keys

    def session_requested(self) -> Handler:
        if self.open_sessions >= self._max_sessions:
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "too many sessions (MaxSessions)"
            )
        self.open_sessions += 1
        return self._counted

    async def _counted(self, stdin: Any, stdout: Any, stderr: Any) -> None:
        status = 255
        try:
            status = await self.run_command(
                stdout.channel.get_command() or "", stdin, stdout, stderr
            )
        finally:
            self.open_sessions -= 1
            stdout.channel.exit(status)

    async def run_command(self, command: str, stdin: Any, stdout: Any, stderr: Any) -> int:
        raise NotImplementedError


class _ProxyConnection(_KeyAuthServer):
    def __init__(self, proxy: ProxyStandIn) -> None:
        super().__init__(proxy.username, proxy.client_keys, proxy.max_sessions)
        self._proxy = proxy

    async def run_command(self, command: str, stdin: Any, stdout: Any, stderr: Any) -> int:
        self._proxy.commands.append(command)
        words = shlex.split(command)
        verb, args = (words[0], words[1:]) if words else ("", [])
        if verb == "host" and args:
            device = self._proxy.devices.get(args[0])
            if device is None or not device.online:
                return 255
            env = {"ORCH_TEST_UUID": device.uuid}
            return await self._run(device, " ".join(args[1:]) or None, env, stdin, stdout, stderr)
        if verb == "hostvia" and len(args) in (2, 3):
            gateway = self._proxy.devices.get(args[0])
            target = self._proxy.devices.get(args[1])
            if gateway is None or not gateway.online:
                stderr.write(f"hostvia: gateway {args[0]} is not online\n".encode())
                return 255
            if target is None:
                return 255
            env = {"ORCH_TEST_UUID": target.uuid, "ORCH_TEST_VIA": gateway.uuid}
            if len(args) == 3:
                env["ORCH_TEST_IP"] = args[2]
            return await self._run(target, None, env, stdin, stdout, stderr)
        stderr.write(f"unsupported proxy command: {command}\n".encode())
        return 255

    @staticmethod
    async def _run(
        device: RegisteredDevice,
        command: str | None,
        env: dict[str, str],
        stdin: Any,
        stdout: Any,
        stderr: Any,
    ) -> int:
        if device.forward is not None:
            return await forward_session(device.forward, command, stdin, stdout, stderr)
        argv = ["/bin/sh", "-c", command] if command else ["/bin/sh", "-s"]
        return await run_shell(argv, env, stdin, stdout, stderr)


@dataclass
class ProxyStandIn:
    """The balena SSH proxy stand-in; ``await start()`` then connect to ``127.0.0.1:port``."""

    username: str
    client_keys: list[asyncssh.SSHKey]
    max_sessions: int = 10
    devices: dict[str, RegisteredDevice] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    port: int = 0
    _server: Any = None

    def register(
        self, uuid: str, *, online: bool = True, forward: ForwardTarget | None = None
    ) -> None:
        """Make ``uuid`` known to the proxy (``online`` = connected to the VPN)."""
        self.devices[uuid] = RegisteredDevice(uuid, online, forward)

    async def start(self) -> ProxyStandIn:
        self._server = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[host_key()],
            server_factory=lambda: _ProxyConnection(self),
            encoding=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()


class _DeviceConnection(_KeyAuthServer):
    def __init__(self, server: DeviceShellServer) -> None:
        super().__init__(server.username, server.client_keys, server.max_sessions)
        self._server = server

    def connection_requested(self, dest_host: str, dest_port: int, *_: Any) -> bool:
        """Allow direct-tcpip (jump) only to loopback, like a gateway on a private LAN."""
        self._server.forwards.append((dest_host, dest_port))
        return dest_host.startswith("127.")

    async def run_command(self, command: str, stdin: Any, stdout: Any, stderr: Any) -> int:
        env = {"ORCH_TEST_UUID": self._server.uuid}
        argv = ["/bin/sh", "-c", command] if command else ["/bin/sh", "-s"]
        return await run_shell(argv, env, stdin, stdout, stderr)


@dataclass
class DeviceShellServer:
    """A device sshd stand-in: exec in ``/bin/sh`` as ``ORCH_TEST_UUID=<uuid>``, jump-capable."""

    uuid: str
    client_keys: list[asyncssh.SSHKey]
    username: str = "root"
    max_sessions: int = 10
    forwards: list[tuple[str, int]] = field(default_factory=list)
    port: int = 0
    _server: Any = None

    async def start(self) -> DeviceShellServer:
        self._server = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[host_key()],
            server_factory=lambda: _DeviceConnection(self),
            encoding=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()
