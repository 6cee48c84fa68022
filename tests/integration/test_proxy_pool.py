"""Proxy route multiplexing: many devices' sessions as channels over a few proxy connections.

The proxy is the real-asyncssh stand-in of tests/support/proxy_server.py, which runs each
``host <uuid>`` session in a real ``/bin/sh`` and, like OpenSSH ``MaxSessions``, refuses a channel
beyond its per-connection limit. A subclass here only records the server side of each
connection (to count them and to kill one).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncssh
import pytest

from orchestrator.models import Route
from orchestrator.transport import login
from orchestrator.transport.reads import SLICE_BYTES, receive_in_slices
from orchestrator.transport.ssh import ScriptResult, SSHSettings, SSHTransport
from tests.support import run
from tests.support.proxy_server import ProxyStandIn, _ProxyConnection, host_key
from tests.support.sshserver import known_hosts_line

USER = "gh_pool"
SCRIPT = b'printf "begin uuid=%s\\n" "$ORCH_TEST_UUID"\nsleep 0.4\nprintf "end uuid=%s\\n" "$ORCH_TEST_UUID"\n'
SLOW_SCRIPT = b'printf "begin uuid=%s\\n" "$ORCH_TEST_UUID"\nsleep 3\nprintf "end uuid=%s\\n" "$ORCH_TEST_UUID"\n'


class _TrackedConnection(_ProxyConnection):
    def __init__(self, proxy: TrackedProxy) -> None:
        super().__init__(proxy)
        self._tracked = proxy

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._tracked.connections.append(conn)

    def session_requested(self):  # type: ignore[override]
        handler = super().session_requested()
        self._tracked.peak_sessions = max(self._tracked.peak_sessions, self.open_sessions)
        return handler


class TrackedProxy(ProxyStandIn):
    """The proxy stand-in, recording each accepted connection and the peak sessions on one."""

    connections: list[asyncssh.SSHServerConnection]
    peak_sessions: int = 0

    async def start(self) -> TrackedProxy:
        self.connections = []
        self._server = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[host_key()],
            server_factory=lambda: _TrackedConnection(self),
            encoding=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self


@pytest.fixture
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def uuids(count: int, prefix: str = "d") -> list[str]:
    return [f"{prefix}{index:031x}" for index in range(count)]


def make_transport(tmp_path: Path, key: asyncssh.SSHKey, port: int, **fields) -> SSHTransport:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_hosts_line("127.0.0.1", port, host_key()))
    return SSHTransport(SSHSettings(keys=(key,), known_hosts=str(known_hosts), **fields))


def proxy_route(proxy: ProxyStandIn, uuid: str) -> Route:
    return Route("proxy", "127.0.0.1", proxy.port, USER, command=f"host {uuid}")


async def start_proxy(key: asyncssh.SSHKey, devices: list[str], max_sessions: int) -> TrackedProxy:
    proxy = await TrackedProxy(USER, [key], max_sessions=max_sessions).start()
    for uuid in devices:
        proxy.register(uuid)
    return proxy


async def run_all(
    transport: SSHTransport, proxy: ProxyStandIn, devices: list[str], script: bytes = SCRIPT
) -> dict[str, ScriptResult]:
    results = await asyncio.gather(
        *(transport.run_script(proxy_route(proxy, uuid), script) for uuid in devices)
    )
    return dict(zip(devices, results, strict=True))


def assert_complete(uuid: str, result: ScriptResult) -> None:
    assert result.error is None, result.error
    assert result.exit_status == 0
    assert result.stdout == f"begin uuid={uuid}\nend uuid={uuid}\n".encode()
    assert result.sent_at > 0 and not result.truncated
    assert result.chunk_times and result.chunk_times[-1][0] == len(result.stdout)


def test_many_devices_share_three_connections(tmp_path, client_key):
    devices = uuids(25)

    async def main() -> tuple[dict[str, ScriptResult], dict[str, ScriptResult], TrackedProxy]:
        proxy = await start_proxy(client_key, devices, max_sessions=10)
        transport = make_transport(tmp_path, client_key, proxy.port)
        try:
            first = await run_all(transport, proxy, devices)
            again = await run_all(transport, proxy, devices[:10])
            return first, again, proxy
        finally:
            await transport.close()
            await proxy.stop()

    first, again, proxy = run(main())
    for uuid, result in [*first.items(), *again.items()]:
        assert_complete(uuid, result)
    assert len(proxy.connections) == 3  # 25 sessions, 10 per connection; the rerun reuses them
    assert proxy.peak_sessions == 10
    assert all(conn.is_closed() for conn in proxy.connections)  # closed by transport.close()


def test_proxy_refusing_channels_beyond_its_limit_loses_no_device(tmp_path, client_key):
    devices = uuids(20, "e")

    async def main() -> tuple[dict[str, ScriptResult], TrackedProxy, int]:
        proxy = await start_proxy(client_key, devices, max_sessions=3)
        transport = make_transport(
            tmp_path, client_key, proxy.port, proxy_sessions_per_connection=10
        )
        try:
            results = await run_all(transport, proxy, devices)
            return results, proxy, transport.pool_for(proxy_route(proxy, devices[0])).refusals
        finally:
            await transport.close()
            await proxy.stop()

    results, proxy, refusals = run(main())
    for uuid, result in results.items():
        assert_complete(uuid, result)
    assert refusals > 0
    assert proxy.peak_sessions == 3
    # once a connection is known to take 3, new ones are opened instead of hammering it
    assert 7 <= len(proxy.connections) <= 12


def test_a_dying_connection_fails_only_its_own_devices(tmp_path, client_key):
    devices = uuids(20, "f")
    later = uuids(15, "a")

    async def main() -> tuple[dict[str, ScriptResult], dict[str, ScriptResult], TrackedProxy]:
        proxy = await start_proxy(client_key, devices + later, max_sessions=10)
        transport = make_transport(tmp_path, client_key, proxy.port)
        try:
            sweep = asyncio.ensure_future(run_all(transport, proxy, devices, SLOW_SCRIPT))
            while len(proxy.commands) < len(devices):
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # every session has started its script
            proxy.connections[0].abort()
            results = await sweep
            after = await run_all(transport, proxy, later)
            return results, after, proxy
        finally:
            await transport.close()
            await proxy.stop()

    results, after, proxy = run(main())
    lost = {uuid: r for uuid, r in results.items() if r.error is not None}
    assert len(lost) == 10
    for uuid, result in lost.items():
        assert result.error.kind == "disconnected"
        assert "shared connection to the proxy was lost" in str(result.error) or (
            "connection lost" in str(result.error)
        )
        assert result.stdout == f"begin uuid={uuid}\n".encode()  # partial output kept
    for uuid, result in results.items():
        if uuid not in lost:
            assert result.stdout == f"begin uuid={uuid}\nend uuid={uuid}\n".encode()
    for uuid, result in after.items():
        assert_complete(uuid, result)
    assert len(proxy.connections) == 3  # 15 later sessions: the survivor plus a replacement


def test_a_rejected_key_fails_every_device_with_an_auth_error(tmp_path, client_key):
    devices = uuids(12, "c")
    other_key = asyncssh.generate_private_key("ssh-ed25519")

    async def main() -> dict[str, ScriptResult]:
        proxy = await start_proxy(other_key, devices, max_sessions=10)
        transport = make_transport(tmp_path, client_key, proxy.port)
        try:
            return await run_all(transport, proxy, devices)
        finally:
            await transport.close()
            await proxy.stop()

    results = run(main())
    assert all(r.error is not None and r.error.kind == "auth" for r in results.values())


def test_big_reads_of_a_shared_connection_reach_asyncssh_in_slices(
    tmp_path, client_key, monkeypatch
):
    """Ten devices print 256 KiB each over one proxy connection: the socket hands orch reads
    far bigger than a slice, asyncssh's parser never gets more than `SLICE_BYTES` at once, and
    every device's output arrives byte for byte."""
    devices = uuids(10, "b")
    lines = 4096  # 64-byte lines: 256 KiB per device
    dots = "." * 24
    script = (
        f'i=0; while [ $i -lt {lines} ]; do printf "%s %05d {dots}\\n" "$ORCH_TEST_UUID" $i; '
        "i=$((i + 1)); done\n"
    ).encode()
    socket_reads: list[int] = []
    parser_reads: list[int] = []
    parse = asyncssh.SSHClientConnection.data_received

    def parser(self, data, datatype=None):  # asyncssh's own, recording what it is given
        parser_reads.append(len(data))
        parse(self, data, datatype)

    def recording_slicer(conn):
        receive_in_slices(conn)
        sliced = conn.data_received

        def from_socket(data, datatype=None):
            socket_reads.append(len(data))
            sliced(data, datatype)

        conn.data_received = from_socket

    monkeypatch.setattr(asyncssh.SSHClientConnection, "data_received", parser)
    monkeypatch.setattr(login, "receive_in_slices", recording_slicer)

    async def main() -> dict[str, ScriptResult]:
        proxy = await start_proxy(client_key, devices, max_sessions=10)
        transport = make_transport(tmp_path, client_key, proxy.port)
        try:
            return await run_all(transport, proxy, devices, script)
        finally:
            await transport.close()
            await proxy.stop()

    results = run(main())
    for uuid, result in results.items():
        assert result.error is None, result.error
        expected = "".join(f"{uuid} {i:05d} {dots}\n" for i in range(lines)).encode()
        assert result.stdout == expected
    assert max(socket_reads) > SLICE_BYTES
    assert max(parser_reads) <= SLICE_BYTES
    assert sum(parser_reads) == sum(socket_reads)
