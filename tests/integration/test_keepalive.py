"""Keepalives on a shared proxy connection: a connection that went silent is dropped within a
few intervals, one that is quiet but alive is kept.

Between orch and the real-asyncssh proxy stand-in sits a loopback TCP relay that can go silent
without closing anything (what a dead NAT entry or a pulled cable looks like to both ends).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncssh
import pytest

from orchestrator.models import Route
from orchestrator.transport.keepalive import lazy_keepalive
from orchestrator.transport.ssh import ScriptResult, SSHSettings, SSHTransport
from tests.integration.test_proxy_pool import USER, start_proxy, uuids
from tests.support import run
from tests.support.proxy_server import host_key
from tests.support.sshserver import known_hosts_line

INTERVAL_S = 0.2
DEADLINE_S = 5.0
"""The device deadline: a silent connection that keepalives missed would end in a timeout."""


class SilenceableRelay:
    """Forwards loopback TCP connections to ``port``; once ``silent``, it forwards nothing in
    either direction and closes nothing."""

    def __init__(self, port: int) -> None:
        self._port = port
        self.silent = False
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._port)
        self._writers += [writer, up_writer]
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.silent:
                writer.write(data)
                await writer.drain()

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def through_relay(
    tmp_path: Path, key: asyncssh.SSHKey, uuid: str, script: bytes, silence_after_s: float | None
) -> tuple[ScriptResult, float]:
    """Run ``script`` on one device through the relay, silencing it ``silence_after_s`` into
    the script; the result and how long it took."""
    proxy = await start_proxy(key, [uuid], max_sessions=10)
    relay = SilenceableRelay(proxy.port)
    port = await relay.start()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_hosts_line("127.0.0.1", port, host_key()))
    transport = SSHTransport(
        SSHSettings(keys=(key,), known_hosts=str(known_hosts), keepalive_interval_s=INTERVAL_S)
    )
    route = Route("proxy", "127.0.0.1", port, USER, command=f"host {uuid}")
    try:
        started = time.monotonic()
        session = asyncio.ensure_future(transport.run_script(route, script, deadline_s=DEADLINE_S))
        if silence_after_s is not None:
            while not proxy.commands:
                await asyncio.sleep(0.01)
            await asyncio.sleep(silence_after_s)
            relay.silent = True
        result = await session
        return result, time.monotonic() - started
    finally:
        await transport.close()
        await relay.stop()
        await proxy.stop()


@pytest.fixture
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def test_a_silent_proxy_connection_fails_its_devices_within_a_few_intervals(tmp_path, client_key):
    (uuid,) = uuids(1, "5")
    script = f"echo begin; sleep {DEADLINE_S:g}; echo end\n".encode()
    result, took = run(through_relay(tmp_path, client_key, uuid, script, silence_after_s=0.5))
    # asyncssh gives up after 3 unanswered keepalives, each sent 1-2 intervals after the last
    # sign of life: the connection is declared lost (not timed out) before the deadline
    assert result.error is not None and result.error.kind == "disconnected", result.error
    assert took < DEADLINE_S
    assert result.stdout == b"begin\n"  # what arrived before the silence is kept


def test_a_quiet_but_live_connection_is_kept(tmp_path, client_key):
    (uuid,) = uuids(1, "6")
    script = b"echo begin; sleep 2; echo end\n"  # ten intervals without a byte of output
    result, _took = run(through_relay(tmp_path, client_key, uuid, script, silence_after_s=None))
    assert result.error is None, result.error
    assert result.stdout == b"begin\nend\n"


def test_lazy_keepalive_leaves_an_asyncssh_without_the_timer_alone() -> None:
    class Bare:
        pass

    conn = Bare()
    assert lazy_keepalive(conn) is False
    assert vars(conn) == {}
