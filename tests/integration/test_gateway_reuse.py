"""Jump routes share one connection to their gateway, close it once idle, and fail cleanly."""

from __future__ import annotations

import asyncio

from orchestrator.models import Route
from orchestrator.transport import ssh
from orchestrator.transport.limits import RouteLimiter
from tests.support import run
from tests.support.sshserver import SSHTestServer


def hop(server: SSHTestServer) -> Route:
    return Route("direct", server.host, server.port, "root")


def through(gateway: SSHTestServer, target: SSHTestServer) -> Route:
    return Route("jump", "127.0.0.1", target.port, "root", via=hop(gateway))


def test_targets_behind_one_gateway_share_its_connection(client_key, make_transport):
    async def scenario():
        async with (
            SSHTestServer(client_keys=[client_key], allow_forwarding=True) as gateway,
            SSHTestServer(client_keys=[client_key], env={"WHO": "a"}) as first,
            SSHTestServer(client_keys=[client_key], env={"WHO": "b"}) as second,
        ):
            transport = make_transport([gateway, first, second])
            limiter = RouteLimiter(max_proxy_sessions=50, max_targets_per_gateway=3)
            routes = [through(gateway, first if i % 2 else second) for i in range(9)]

            async def one(route: Route):
                async with limiter.slot(route):
                    return await transport.run_script(route, b'echo "$WHO"\n')

            results = await asyncio.gather(*(one(route) for route in routes))
            await transport.close()
            return gateway, first, second, results

    gateway, first, second, results = run(scenario())
    assert [r.error for r in results] == [None] * 9
    assert [r.stdout for r in results] == [b"a\n" if i % 2 else b"b\n" for i in range(9)]
    assert gateway.connection_count == 1
    assert len(gateway.forward_requests) == 9
    assert first.connection_count + second.connection_count == 9


def test_an_idle_gateway_connection_is_closed_and_reopened(client_key, make_transport, monkeypatch):
    monkeypatch.setattr(ssh, "GATEWAY_LINGER_S", 0.2)

    async def scenario():
        async with (
            SSHTestServer(client_keys=[client_key], allow_forwarding=True) as gateway,
            SSHTestServer(client_keys=[client_key], env={"WHO": "t"}) as target,
        ):
            transport = make_transport([gateway, target])
            before = await transport.run_script(through(gateway, target), b'echo "$WHO"\n')
            await asyncio.sleep(0.6)
            live_after_idle = transport.gateway_pool_for(hop(gateway)).live_connections
            after = await transport.run_script(through(gateway, target), b'echo "$WHO"\n')
            await transport.close()
            return gateway, before, after, live_after_idle

    gateway, before, after, live_after_idle = run(scenario())
    assert before.stdout == after.stdout == b"t\n"
    assert live_after_idle == 0
    assert gateway.connection_count == 2
