"""Route planning choices and route concurrency limits (pure)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from orchestrator.errors import UsageError
from orchestrator.models import Device, Route
from orchestrator.transport.limits import RouteLimiter
from orchestrator.transport.routes import (
    FleetIndex,
    RouteSettings,
    explain_unreachable,
    plan_routes,
)

PROXY = RouteSettings(proxy_user="gh_tester")
PUBLIC = "203.0.113.7"


def dev(
    uuid: str, *, online: bool, vpn: bool, ips: str = "", public: str | None = PUBLIC
) -> Device:
    return Device(
        uuid=uuid,
        name=f"n-{uuid}",
        public_address=public,
        local_ips=tuple(ips.split()),
        is_online=online,
        is_connected_to_vpn=vpn,
        heartbeat="online" if online else "offline",
    )


ONLINE = dev("on1", online=True, vpn=True, ips="192.168.1.10")
VPN_ONLY = dev("vpn1", online=False, vpn=True, ips="192.168.1.11")
HEARTBEAT_ONLY = dev("hb1", online=True, vpn=False, ips="192.168.1.12")
OFFLINE = dev("off1", online=False, vpn=False, ips="10.9.0.5 192.168.1.40")
FAR_SIBLING = dev("far1", online=True, vpn=True, ips="192.168.7.3")
OTHER_LAN = dev("oth1", online=True, vpn=True, ips="172.20.0.3")
ALONE = dev("alone", online=False, vpn=False, ips="192.168.9.9", public="198.51.100.1")
FLEET = [ONLINE, VPN_ONLY, HEARTBEAT_ONLY, OFFLINE, FAR_SIBLING, OTHER_LAN, ALONE]


def kinds(routes: list[Route]) -> list[str]:
    return [r.kind for r in routes]


def test_online_device_goes_through_the_proxy() -> None:
    (route,) = plan_routes(ONLINE, FLEET, PROXY)
    assert (route.kind, route.host, route.port, route.user) == (
        "proxy",
        "ssh.balena-devices.com",
        22,
        "gh_tester",
    )
    assert route.command == "host on1" and "VPN" in route.reason


def test_vpn_only_device_still_uses_the_proxy() -> None:
    (route,) = plan_routes(VPN_ONLY, FLEET, PROXY)
    assert route.kind == "proxy" and "heartbeat offline" in route.reason


def test_offline_device_goes_hostvia_through_the_closest_online_sibling() -> None:
    routes = plan_routes(OFFLINE, FLEET, PROXY)
    assert kinds(routes) == ["hostvia", "hostvia"]
    assert routes[0].command == "hostvia on1 off1 192.168.1.40"
    assert "192.168.1.0/24" in routes[0].reason
    assert routes[1].command == "hostvia far1 off1 192.168.1.40"
    assert all("vpn1" not in r.command and "oth1" not in r.command for r in routes)


def test_heartbeat_only_device_needs_a_sibling() -> None:
    routes = plan_routes(HEARTBEAT_ONLY, FLEET, PROXY)
    assert kinds(routes)[0] == "hostvia" and routes[0].command.startswith("hostvia on1 hb1 ")


def test_offline_device_alone_on_its_network_is_unreachable_with_a_reason() -> None:
    assert plan_routes(ALONE, FLEET, PROXY) == []
    reason = explain_unreachable(ALONE, FLEET, PROXY)
    assert "not connected to the balena VPN" in reason and "198.51.100.1" in reason
    assert "\n" not in reason and explain_unreachable(ONLINE, FLEET, PROXY) == ""


def test_sibling_without_known_ips_is_usable_but_a_common_subnet_wins() -> None:
    unknown = dev("unk1", online=True, vpn=True, ips="")
    routes = plan_routes(OFFLINE, [OFFLINE, unknown, ONLINE], PROXY)
    assert [r.command.split()[1] for r in routes] == ["on1", "unk1"]


def test_local_network_prefers_direct_then_cloud_routes() -> None:
    lan = RouteSettings(proxy_user="gh_tester", local_network=True)
    routes = plan_routes(OFFLINE, FLEET, lan)
    assert kinds(routes)[:2] == ["direct", "direct"]
    assert (routes[0].host, routes[0].port, routes[0].user) == ("10.9.0.5", 22222, "root")
    assert "hostvia" in kinds(routes) and "jump" in kinds(routes)
    jump = next(r for r in routes if r.kind == "jump")
    assert jump.host == "192.168.1.40" and jump.via is not None
    assert jump.via.host in ("192.168.1.10", "192.168.1.12"), "a same-/24 sibling comes first"
    online = kinds(plan_routes(ONLINE, FLEET, lan))
    assert online[:2] == ["direct", "proxy"] and "hostvia" not in online


def test_inventory_devices_use_address_or_their_gateway() -> None:
    gateway = Device("gw", "site-gw", address="198.18.0.1", port=2222, user="admin")
    target = Device("t1", "sensor", address="198.18.0.20", gateway="site-gw")
    plain = Device("p1", "plain", address="198.18.0.30")
    inventory = [gateway, target, plain]
    (direct,) = plan_routes(plain, inventory, RouteSettings())
    assert direct.describe() == "direct root@198.18.0.30:22222"
    (jump,) = plan_routes(target, inventory, RouteSettings())
    assert jump.describe() == "jump root@198.18.0.20:22222 via admin@198.18.0.1:2222"
    lost = Device("t2", "lost", address="198.18.0.21", gateway="nowhere")
    assert plan_routes(lost, inventory, RouteSettings()) == []
    assert "'nowhere' is not a device of this fleet" in explain_unreachable(
        lost, inventory, RouteSettings()
    )


@pytest.mark.parametrize(
    ("mode", "device", "expected"),
    [
        ("proxy", ONLINE, ["proxy"]),
        ("proxy", OFFLINE, []),
        ("hostvia", ONLINE, ["hostvia"]),
        ("direct", ONLINE, ["direct"]),
        ("direct", OFFLINE, ["direct", "direct"]),
        ("jump", OFFLINE, ["jump", "jump", "jump"]),
    ],
)
def test_forced_modes_only_produce_that_kind(
    mode: str, device: Device, expected: list[str]
) -> None:
    settings = RouteSettings(mode=mode, proxy_user="gh_tester")
    assert kinds(plan_routes(device, FLEET, settings)) == expected


def test_forced_direct_without_lan_address_explains_itself() -> None:
    settings = RouteSettings(mode="direct", proxy_user="gh_tester")
    bare = dev("bare", online=True, vpn=True, ips="")
    assert plan_routes(bare, [bare], settings) == []
    assert "no LAN address" in explain_unreachable(bare, [bare], settings)


def test_cloud_routes_need_a_username() -> None:
    assert plan_routes(ONLINE, FLEET, RouteSettings()) == []
    assert "ssh_user" in explain_unreachable(ONLINE, FLEET, RouteSettings())


def test_unknown_mode_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown route mode 'vpn'"):
        RouteSettings(mode="vpn")


def test_offline_devices_spread_over_the_gateways_of_their_network() -> None:
    gateways = [dev(f"gw{i}", online=True, vpn=True, ips=f"192.168.1.{i + 1}") for i in range(3)]
    offline = [
        dev(f"t{i:02d}", online=False, vpn=False, ips=f"192.168.1.{i + 100}") for i in range(30)
    ]
    index = FleetIndex(gateways + offline)
    first = Counter(plan_routes(d, index, PROXY)[0].command.split()[1] for d in offline)
    assert set(first) == {"gw0", "gw1", "gw2"} and max(first.values()) < 20


def test_limiter_caps_targets_per_gateway_and_sessions_per_proxy() -> None:
    limiter = RouteLimiter(max_proxy_sessions=4, max_targets_per_gateway=2)
    active: Counter[str] = Counter()
    peak: Counter[str] = Counter()

    async def session(route: Route, key: str) -> None:
        async with limiter.slot(route):
            for name in (key, "proxy"):
                active[name] += 1
                peak[name] = max(peak[name], active[name])
            await asyncio.sleep(0.01)
            for name in (key, "proxy"):
                active[name] -= 1

    def hostvia(gateway: str, target: str) -> Route:
        return Route(
            "hostvia", "ssh.example", 22, "u", command=f"hostvia {gateway} {target} 1.2.3.4"
        )

    async def main() -> None:
        jobs = [session(hostvia("gwA", f"a{i}"), "gwA") for i in range(8)]
        jobs += [session(hostvia("gwB", f"b{i}"), "gwB") for i in range(8)]
        jobs += [
            session(Route("proxy", "ssh.example", 22, "u", command=f"host p{i}"), "p")
            for i in range(8)
        ]
        await asyncio.gather(*jobs)

    asyncio.run(main())
    assert peak["gwA"] == 2 and peak["gwB"] == 2
    assert peak["proxy"] == 4


def test_limiter_bounds_jump_gateways_and_leaves_direct_alone() -> None:
    limiter = RouteLimiter(max_proxy_sessions=1, max_targets_per_gateway=1)
    via = Route("direct", "198.18.0.1", 22222, "root")
    jump = Route("jump", "198.18.0.9", 22222, "root", via=via)
    direct = Route("direct", "198.18.0.2", 22222, "root")

    async def main() -> list[str]:
        order: list[str] = []

        async def hold(route: Route, name: str) -> None:
            async with limiter.slot(route):
                order.append(f"+{name}")
                await asyncio.sleep(0.02)
                order.append(f"-{name}")

        await asyncio.gather(hold(jump, "j1"), hold(jump, "j2"), hold(direct, "d"))
        return order

    order = asyncio.run(main())
    assert order.index("-j1") < order.index("+j2")
    assert order.index("+d") < order.index("-j1")
