"""Every route kind the planner produces, run over real SSH against asyncssh stand-ins.

The proxy stand-in (tests/support/proxy_server.py) implements balena's ``host`` and ``hostvia``
verbs; device servers run the script in a real /bin/sh and act as jump hosts. The client is plain
asyncssh (a tiny helper below), so these tests exercise only the routes and the stand-ins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncssh
import pytest

from orchestrator.models import Device, Route
from orchestrator.transport.routes import RouteSettings, plan_routes
from tests.support.proxy_server import DeviceShellServer, ForwardTarget, ProxyStandIn

SCRIPT = b'printf "uuid=%s via=%s ip=%s\\n" "$ORCH_TEST_UUID" "$ORCH_TEST_VIA" "$ORCH_TEST_IP"\necho $((6 * 7))\n'
USER = "gh_tester"
GW, TARGET, ONLINE = "a" * 32, "b" * 32, "c" * 32


@pytest.fixture(scope="module")
def key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


async def run_route(
    route: Route, key: asyncssh.SSHKey, script: bytes = SCRIPT
) -> asyncssh.SSHCompletedProcess:
    """Connect along ``route`` (through ``route.via`` for a jump) and run its command."""
    options = {"client_keys": [key], "known_hosts": None}
    if route.via is None:
        async with asyncssh.connect(route.host, route.port, username=route.user, **options) as conn:
            return await _run(conn, route.command, script)
    via = route.via
    async with (
        asyncssh.connect(via.host, via.port, username=via.user, **options) as gateway,
        asyncssh.connect(
            route.host, route.port, username=route.user, tunnel=gateway, **options
        ) as conn,
    ):
        return await _run(conn, route.command, script)


async def _run(
    conn: asyncssh.SSHClientConnection, command: str, script: bytes
) -> asyncssh.SSHCompletedProcess:
    """Send ``script`` on stdin; the far end may exit before reading it (proxy refusals)."""
    process = await conn.create_process(command, encoding=None)
    try:
        process.stdin.write(script)
        process.stdin.write_eof()
    except BrokenPipeError:
        pass
    return await process.wait(timeout=20)


def with_proxy(
    key: asyncssh.SSHKey, body: Callable[[ProxyStandIn, RouteSettings], Awaitable[None]]
) -> None:
    async def main() -> None:
        proxy = await ProxyStandIn(USER, [key]).start()
        proxy.register(GW, online=True)
        proxy.register(ONLINE, online=True)
        proxy.register(TARGET, online=False)
        settings = RouteSettings(proxy_host="127.0.0.1", proxy_port=proxy.port, proxy_user=USER)
        try:
            await body(proxy, settings)
        finally:
            await proxy.stop()

    asyncio.run(main())


def balena(uuid: str, name: str, *, vpn: bool, ips: str = "198.18.5.20") -> Device:
    return Device(
        uuid=uuid,
        name=name,
        public_address="203.0.113.5",
        local_ips=tuple(ips.split()),
        is_online=vpn,
        is_connected_to_vpn=vpn,
        heartbeat="online" if vpn else "offline",
    )


FLEET = [
    balena(GW, "gateway", vpn=True, ips="198.18.5.10"),
    balena(ONLINE, "online", vpn=True, ips="198.18.5.11"),
    balena(TARGET, "target", vpn=False, ips="198.18.5.30"),
]


def test_proxy_host_runs_the_stdin_script_in_a_shell(key: asyncssh.SSHKey) -> None:
    async def body(proxy: ProxyStandIn, settings: RouteSettings) -> None:
        (route, *_) = plan_routes(FLEET[1], FLEET, settings)
        assert route.kind == "proxy" and route.command == f"host {ONLINE}"
        result = await run_route(route, key)
        assert result.exit_status == 0
        assert result.stdout.decode().splitlines() == [f"uuid={ONLINE} via= ip=", "42"]

    with_proxy(key, body)


def test_proxy_host_with_a_command(key: asyncssh.SSHKey) -> None:
    async def body(proxy: ProxyStandIn, settings: RouteSettings) -> None:
        route = Route(
            "proxy", "127.0.0.1", proxy.port, USER, command=f"host {GW} echo $ORCH_TEST_UUID"
        )
        result = await run_route(route, key, b"")
        assert (result.exit_status, result.stdout) == (0, f"{GW}\n".encode())

    with_proxy(key, body)


def test_hostvia_reaches_an_offline_device_through_its_online_sibling(key: asyncssh.SSHKey) -> None:
    async def body(proxy: ProxyStandIn, settings: RouteSettings) -> None:
        routes = plan_routes(FLEET[2], FLEET, settings)
        assert [r.kind for r in routes] == ["hostvia", "hostvia"]
        result = await run_route(routes[0], key)
        gateway = routes[0].command.split()[1]
        assert result.exit_status == 0
        assert (
            result.stdout.decode().splitlines()[0] == f"uuid={TARGET} via={gateway} ip=198.18.5.30"
        )
        assert proxy.commands == [routes[0].command]

    with_proxy(key, body)


def test_unknown_or_offline_uuid_exits_255_without_output(key: asyncssh.SSHKey) -> None:
    async def body(proxy: ProxyStandIn, settings: RouteSettings) -> None:
        for uuid in ("f" * 32, TARGET):
            route = Route("proxy", "127.0.0.1", proxy.port, USER, command=f"host {uuid}")
            result = await run_route(route, key)
            assert (result.exit_status, result.stdout, result.stderr) == (255, b"", b"")

    with_proxy(key, body)


def test_hostvia_through_an_offline_gateway_fails(key: asyncssh.SSHKey) -> None:
    async def body(proxy: ProxyStandIn, settings: RouteSettings) -> None:
        route = Route("hostvia", "127.0.0.1", proxy.port, USER, command=f"hostvia {TARGET} {GW}")
        result = await run_route(route, key)
        assert result.exit_status == 255 and result.stdout == b""
        assert b"not online" in result.stderr

    with_proxy(key, body)


def test_eleventh_concurrent_session_on_one_connection_is_refused(key: asyncssh.SSHKey) -> None:
    async def body(proxy: ProxyStandIn, settings: RouteSettings) -> None:
        async with asyncssh.connect(
            "127.0.0.1", proxy.port, username=USER, client_keys=[key], known_hosts=None
        ) as conn:
            held = [await conn.create_process(f"host {GW}", encoding=None) for _ in range(10)]
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.create_process(f"host {GW}", encoding=None)
            held[0].stdin.write(b"echo freed\n")
            held[0].stdin.write_eof()
            assert (await held[0].wait(timeout=10)).stdout == b"freed\n"
            again = await conn.run(f"host {GW}", input=b"echo again\n", encoding=None, timeout=10)
            assert again.stdout == b"again\n"
            for process in held[1:]:
                process.stdin.write_eof()
                await process.wait(timeout=10)

    with_proxy(key, body)


def test_wrong_user_or_key_is_rejected(key: asyncssh.SSHKey) -> None:
    async def body(proxy: ProxyStandIn, settings: RouteSettings) -> None:
        other = asyncssh.generate_private_key("ssh-ed25519")
        for user, client in ((USER, other), ("someone", key)):
            with pytest.raises(asyncssh.PermissionDenied):
                await asyncssh.connect(
                    "127.0.0.1", proxy.port, username=user, client_keys=[client], known_hosts=None
                )

    with_proxy(key, body)


def test_direct_jump_and_forwarded_proxy_reach_device_servers(key: asyncssh.SSHKey) -> None:
    async def main() -> None:
        gateway = await DeviceShellServer("gw-uuid", [key]).start()
        target = await DeviceShellServer("target-uuid", [key]).start()
        proxy = await ProxyStandIn(USER, [key]).start()
        proxy.register("target-uuid", forward=ForwardTarget("127.0.0.1", target.port, "root", key))
        try:
            inventory = [
                Device("gw-uuid", "gw", address="127.0.0.1", port=gateway.port),
                Device("target-uuid", "tgt", address="127.0.0.1", port=target.port, gateway="gw"),
            ]
            (jump,) = plan_routes(inventory[1], inventory, RouteSettings())
            assert jump.kind == "jump" and jump.via is not None and jump.via.port == gateway.port
            result = await run_route(jump, key)
            assert result.stdout.decode().splitlines() == ["uuid=target-uuid via= ip=", "42"]
            assert gateway.forwards == [("127.0.0.1", target.port)]

            lan = RouteSettings(mode="direct", direct_port=gateway.port)
            device = Device("gw-uuid", "gw", local_ips=("127.0.0.1",), is_connected_to_vpn=False)
            (direct,) = plan_routes(device, [device], lan)
            assert (direct.kind, direct.user) == ("direct", "root")
            assert (await run_route(direct, key)).stdout.startswith(b"uuid=gw-uuid ")

            proxied = Route("proxy", "127.0.0.1", proxy.port, USER, command="host target-uuid")
            assert (await run_route(proxied, key)).stdout.startswith(b"uuid=target-uuid ")
        finally:
            for server in (proxy, gateway, target):
                await server.stop()

    asyncio.run(main())
