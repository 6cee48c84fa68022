"""A real in-process asyncssh server on 127.0.0.1 for transport and runner tests.

Host and client keys are generated in memory. By default an exec request runs its command in a
real ``/bin/sh -c`` subprocess with the channel's stdin piped to it (so ``sh -s`` runs the script
the client sends). Misbehaviours imitate broken devices:

- ``hang``: accept the command, optionally print ``partial_output``, then never answer nor exit;
- ``drop``: print ``partial_output`` then abort the TCP connection;
- ``flood``: print ``flood_bytes`` (50 MB by default) as fast as the client takes it;
- ``forge``: print lines imitating frame markers, including complete fake frames, then run the
  real script.

``reject_auth`` refuses every key, ``auth_delay_s`` stalls authentication, ``proxy_uuids`` turns
the server into a balena-proxy stand-in (``host <uuid>`` / ``hostvia <gw> <uuid> [ip]`` run the
stdin script in sh with ``ORCH_TEST_UUID=<uuid>``; unknown uuid: exit 255 without output), and
``allow_forwarding`` lets it act as a gateway that forwards direct-tcpip only to 127.0.0.1;
with ``record_forwarded`` it forwards through its own session, which appends the size of every
data message the client sends on a forwarded channel to ``forwarded_messages``.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Coroutine, Iterable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import asyncssh

MODES = ("normal", "hang", "drop", "flood", "forge")
FLOOD_BYTES = 50 * 1024 * 1024
PIPE_CHUNK = 64 * 1024
FORGED_TEXT = "FORGED-BY-DEVICE"


def new_key() -> asyncssh.SSHKey:
    """A fresh in-memory ed25519 key."""
    return asyncssh.generate_private_key("ssh-ed25519")


def write_client_key(key: asyncssh.SSHKey, path: str | os.PathLike[str]) -> Path:
    """Write ``key`` as an OpenSSH private key file (mode 600) and its ``.pub`` next to it."""
    target = Path(path)
    key.write_private_key(str(target))
    target.chmod(0o600)
    key.write_public_key(str(target) + ".pub")
    return target


def known_hosts_line(host: str, port: int, key: asyncssh.SSHKey) -> str:
    """One known_hosts line trusting ``key`` for ``host:port``."""
    pattern = host if port == 22 else f"[{host}]:{port}"
    return f"{pattern} {key.export_public_key().decode().strip()}\n"


def write_known_hosts(path: str | os.PathLike[str], servers: Iterable[SSHTestServer]) -> Path:
    """Write a known_hosts file trusting every given server's host key."""
    target = Path(path)
    target.write_text("".join(known_hosts_line(s.host, s.port, s.host_key) for s in servers))
    return target


def _forgery(script: bytes) -> bytes:
    """Marker look-alikes for the steps named in ``script``: fake nonces and broken frames."""
    text = script.decode(errors="replace")
    nonce_match = re.search(r"^N=([0-9a-f]+)$", text, re.MULTILINE)
    nonce = nonce_match.group(1) if nonce_match else "0" * 32
    names = re.findall(r"^orch_step ([a-z][a-z0-9_.-]*) ", text, re.MULTILINE)
    fake = "f" * len(nonce)
    body = FORGED_TEXT.encode()
    out = [f"@@ORCH:{fake}:HELLO\n".encode(), b"@@ORCH:\n"]
    for name in names:
        head = f"@@ORCH:{fake}:BEGIN:{name}:0:{len(body)}:-:0\n".encode()
        out.append(head + body + f"\n@@ORCH:{fake}:END:{name}\n".encode())
        out.append(f"@@ORCH:{nonce}:BEGIN:{name}:0:999999999:-:0\n{FORGED_TEXT}\n".encode())
    out.append(f"@@ORCH:{fake}:DONE\n".encode())
    return b"".join(out)


class _Server(asyncssh.SSHServer):
    def __init__(self, owner: SSHTestServer) -> None:
        self._owner = owner

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._owner.connections.add(conn)
        self._owner.connection_count += 1

    def connection_lost(self, exc: Exception | None) -> None:
        return None

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self._owner.auth_delay_s:
            await asyncio.sleep(self._owner.auth_delay_s)
        if self._owner.reject_auth:
            return False
        return key.public_data in self._owner.authorized

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool | _RecordingForward:
        self._owner.forward_requests.append((dest_host, dest_port))
        allowed = self._owner.allow_forwarding and dest_host == "127.0.0.1"
        if allowed and self._owner.record_forwarded:
            return _RecordingForward(self._owner, dest_port)
        return allowed


class _RecordingForward(asyncssh.SSHTCPSession[bytes]):
    """A forwarded channel to 127.0.0.1:port that records each data message's size."""

    def __init__(self, owner: SSHTestServer, port: int) -> None:
        self._owner = owner
        self._port = port
        self._chan: asyncssh.SSHTCPChannel[bytes] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._early: list[bytes] = []
        self._eof = False

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:  # type: ignore[override]
        self._chan = chan
        self._owner.spawn(self._forward(chan))

    async def _forward(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
        except OSError:
            chan.close()
            return
        self._writer = writer
        writer.write(b"".join(self._early))
        if self._eof:
            writer.write_eof()
        try:
            while data := await reader.read(PIPE_CHUNK):
                chan.write(data)
        finally:
            chan.close()
            writer.close()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self._owner.forwarded_messages.append(len(data))
        if self._writer is None:
            self._early.append(data)
        else:
            self._writer.write(data)

    def eof_received(self) -> bool:
        if self._writer is None:
            self._eof = True
        else:
            self._writer.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._writer is not None:
            self._writer.close()


class SSHTestServer:
    """An async context manager running one asyncssh server; see the module docstring."""

    def __init__(
        self,
        *,
        mode: str = "normal",
        client_keys: Sequence[asyncssh.SSHKey] = (),
        host_key: asyncssh.SSHKey | None = None,
        reject_auth: bool = False,
        auth_delay_s: float = 0.0,
        proxy_uuids: Iterable[str] | None = None,
        allow_forwarding: bool = False,
        record_forwarded: bool = False,
        partial_output: bytes = b"",
        flood_bytes: int = FLOOD_BYTES,
        env: dict[str, str] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        self.mode = mode
        self.host = "127.0.0.1"
        self.port = 0
        self.host_key = host_key or new_key()
        self.client_keys = list(client_keys) or [new_key()]
        self.authorized = {key.public_data for key in self.client_keys}
        self.reject_auth = reject_auth
        self.auth_delay_s = auth_delay_s
        self.proxy_uuids = None if proxy_uuids is None else set(proxy_uuids)
        self.allow_forwarding = allow_forwarding
        self.record_forwarded = record_forwarded
        self.forwarded_messages: list[int] = []
        self.partial_output = partial_output
        self.flood_bytes = flood_bytes
        self.env = env or {}
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self.connection_count = 0
        self.commands: list[str] = []
        self.forward_requests: list[tuple[str, int]] = []
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._procs: set[asyncio.subprocess.Process] = set()

    @property
    def client_key(self) -> asyncssh.SSHKey:
        """The (first) client key this server accepts."""
        return self.client_keys[0]

    async def __aenter__(self) -> SSHTestServer:
        self._acceptor = await asyncssh.create_server(
            lambda: _Server(self),
            self.host,
            0,
            server_host_keys=[self.host_key],
            process_factory=self._start_handler,
            encoding=None,
            line_editor=False,
            allow_scp=False,
            gss_host=None,
            x509_trusted_certs=None,
            x509_trusted_cert_paths=[],
            agent_forwarding=False,
            x11_forwarding=False,
            config=None,
        )
        self.port = self._acceptor.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
        for conn in list(self.connections):
            conn.abort()
        for proc in list(self._procs):
            _kill(proc)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._acceptor is not None:
            await self._acceptor.wait_closed()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task the server cancels when it stops."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_handler(self, process: asyncssh.SSHServerProcess) -> None:
        self.spawn(self._handle(process))

    async def _handle(self, process: asyncssh.SSHServerProcess) -> None:
        command = process.command or ""
        self.commands.append(command)
        try:
            status = await self._dispatch(process, command)
            process.exit(status)
        except (OSError, asyncssh.Error):
            process.close()

    async def _dispatch(self, process: asyncssh.SSHServerProcess, command: str) -> int:
        if self.proxy_uuids is not None:
            return await self._proxy(process, command)
        if self.mode == "hang":
            await self._write(process, self.partial_output)
            await asyncio.Event().wait()
        if self.mode == "drop":
            await self._write(process, self.partial_output or b"partial output line\n" * 500)
            await asyncio.sleep(0.1)
            process.channel.get_connection().abort()
            return 0
        if self.mode == "flood":
            block = b"x" * (PIPE_CHUNK - 1) + b"\n"
            for _ in range(self.flood_bytes // len(block)):
                await self._write(process, block)
            return 0
        if self.mode == "forge":
            script = await process.stdin.read()
            await self._write(process, _forgery(script))
            return await self._run_sh(process, ["/bin/sh", "-s"], self.env, stdin_data=script)
        return await self._run_sh(process, ["/bin/sh", "-c", command], self.env)

    async def _proxy(self, process: asyncssh.SSHServerProcess, command: str) -> int:
        words = command.split()
        uuid = None
        if len(words) == 2 and words[0] == "host":
            uuid = words[1]
        elif len(words) in (3, 4) and words[0] == "hostvia":
            uuid = words[2]
        if uuid is None or uuid not in (self.proxy_uuids or ()):
            return 255
        env = {**self.env, "ORCH_TEST_UUID": uuid}
        return await self._run_sh(process, ["/bin/sh", "-s"], env)

    @staticmethod
    async def _write(process: asyncssh.SSHServerProcess, data: bytes) -> None:
        if data:
            process.stdout.write(data)
            await process.stdout.drain()

    async def _run_sh(
        self,
        process: asyncssh.SSHServerProcess,
        argv: list[str],
        env: dict[str, str],
        *,
        stdin_data: bytes | None = None,
    ) -> int:
        """Run ``argv`` with the channel (or ``stdin_data``) as stdin; pump its output back."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **env},
            start_new_session=True,
        )
        self._procs.add(proc)
        feeder = asyncio.ensure_future(_feed(process, proc, stdin_data))
        try:
            assert proc.stdout is not None and proc.stderr is not None
            await asyncio.gather(
                _pump(proc.stdout, process.stdout), _pump(proc.stderr, process.stderr)
            )
            return await proc.wait()
        finally:
            feeder.cancel()
            with suppress(BaseException):
                await feeder
            _kill(proc)
            self._procs.discard(proc)


async def _feed(
    process: asyncssh.SSHServerProcess,
    proc: asyncio.subprocess.Process,
    stdin_data: bytes | None,
) -> None:
    assert proc.stdin is not None
    try:
        if stdin_data is not None:
            proc.stdin.write(stdin_data)
            await proc.stdin.drain()
        else:
            while True:
                data = await process.stdin.read(PIPE_CHUNK)
                if not data:
                    break
                proc.stdin.write(data)
                await proc.stdin.drain()
    except (OSError, asyncssh.Error):
        pass
    finally:
        with suppress(OSError):
            proc.stdin.close()


async def _pump(source: asyncio.StreamReader, sink: asyncssh.SSHWriter) -> None:
    while True:
        data = await source.read(PIPE_CHUNK)
        if not data:
            return
        sink.write(data)
        await sink.drain()


def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
