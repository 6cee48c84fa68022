"""Route planning: how to reach each device over SSH (pure; no I/O).

Route kinds (reference/balena.md section 4):

- ``proxy``: ``<user>@<proxy_host>:22``, exec ``host <uuid>``; needs the device on the balena VPN.
- ``hostvia``: the proxy's gateway verb, ``hostvia <gateway_uuid> <target_uuid> <target_ip>``, for a
  device off the VPN through an online, VPN-connected sibling on the same network (same public
  address and, when the API lists local IPs, a common subnet; a common /24 is preferred).
- ``direct``: ``root@<lan ip>:22222`` when orch runs inside the site's LAN, or an inventory address.
- ``jump``: an SSH jump through a gateway orch can reach directly (inventory ``gateway``, or a
  LAN sibling when orch runs on the site's network).

:func:`plan_routes` returns candidates best first, each with a ``reason``; the runner tries the
next one when a route fails with an access error. ``[]`` means unreachable, and
:func:`explain_unreachable` says why. Planning a whole fleet: pass a :class:`FleetIndex` built
once instead of the device list, so sibling look-ups stay O(1).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.errors import UsageError
from orchestrator.models import Device, Route
from orchestrator.vocabulary import ROUTE_MODES

MAX_GATEWAY_CANDIDATES = 3
"""How many different gateways a device gets as hostvia/jump candidates."""


@dataclass(frozen=True)
class RouteSettings:
    """Route preferences, from the config and ``--route``."""

    mode: str = "auto"
    proxy_host: str = "ssh.balena-devices.com"
    proxy_port: int = 22
    proxy_user: str | None = None
    """The balena username (whoami, or ``[balena] ssh_user``); proxy routes need it."""
    direct_port: int = 22222
    direct_user: str = "root"
    local_network: bool = False
    """orch runs inside the sites' LAN (config, or implied by ``--route direct``/``jump``)."""
    max_proxy_sessions: int = 50
    max_targets_per_gateway: int = 3

    def __post_init__(self) -> None:
        if self.mode not in ROUTE_MODES:
            raise UsageError(
                f"unknown route mode {self.mode!r}: choose one of {', '.join(ROUTE_MODES)}"
            )

    @property
    def on_lan(self) -> bool:
        """Whether LAN addresses are reachable from here."""
        return self.local_network or self.mode in ("direct", "jump")


class FleetIndex:
    """Devices indexed by uuid, name and public address, for planning many devices."""

    def __init__(self, fleet: Sequence[Device]) -> None:
        self.devices = tuple(fleet)
        self.by_key: dict[str, Device] = {}
        self.by_public: dict[str, list[Device]] = defaultdict(list)
        for device in self.devices:
            self.by_key.setdefault(device.name, device)
            if device.public_address:
                self.by_public[device.public_address].append(device)
        for device in self.devices:
            self.by_key[device.uuid] = device

    def find(self, key: str) -> Device | None:
        """The device with this uuid (preferred) or name."""
        return self.by_key.get(key)


@dataclass
class _Plan:
    routes: list[Route] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def plan_routes(
    device: Device, fleet: Sequence[Device] | FleetIndex, settings: RouteSettings
) -> list[Route]:
    """Candidate routes to ``device``, best first; ``[]`` when none is possible."""
    return _plan(device, _as_index(fleet), settings).routes


def explain_unreachable(
    device: Device, fleet: Sequence[Device] | FleetIndex, settings: RouteSettings
) -> str:
    """One line saying why ``device`` has no route (empty when it has one)."""
    plan = _plan(device, _as_index(fleet), settings)
    if plan.routes:
        return ""
    reasons = "; ".join(dict.fromkeys(plan.rejected)) or "no route kind applies"
    return f"no route to {device.name}: {reasons}"


def _as_index(fleet: Sequence[Device] | FleetIndex) -> FleetIndex:
    return fleet if isinstance(fleet, FleetIndex) else FleetIndex(fleet)


def _plan(device: Device, index: FleetIndex, settings: RouteSettings) -> _Plan:
    plan = _Plan()
    if device.address and settings.mode == "auto":
        kinds = (_inventory_jump,) if device.gateway else (_direct,)
    elif settings.mode == "auto":
        kinds = (_direct, _proxy, _hostvia, _jump) if settings.on_lan else (_proxy, _hostvia)
    else:
        kinds = _FORCED[settings.mode]
    for kind in kinds:
        kind(device, index, settings, plan)
    return plan


def _direct(device: Device, index: FleetIndex, settings: RouteSettings, plan: _Plan) -> None:
    if device.address:
        plan.routes.append(
            Route("direct", device.address, device.port, device.user, reason="inventory address")
        )
        return
    if not settings.on_lan:
        plan.rejected.append(
            "not on the device's local network (use --route direct when orch runs on the site's LAN)"
        )
        return
    ips = _ipv4s(device)
    if not ips:
        plan.rejected.append("the API lists no LAN address for a direct connection")
        return
    for ip in ips[:2]:
        plan.routes.append(
            Route(
                "direct",
                str(ip),
                settings.direct_port,
                settings.direct_user,
                reason=f"orch is on the local network; last known LAN address {ip}",
            )
        )


def _proxy(device: Device, index: FleetIndex, settings: RouteSettings, plan: _Plan) -> None:
    vpn = device.is_connected_to_vpn
    if not (vpn or (settings.mode == "proxy" and vpn is None)):
        plan.rejected.append(
            f"not connected to the balena VPN (heartbeat {device.heartbeat or 'unknown'})"
        )
        return
    if not settings.proxy_user:
        plan.rejected.append(_NO_USER)
        return
    reason = "connected to the balena VPN"
    if device.is_online is False:
        reason += f" (API heartbeat {device.heartbeat or 'offline'})"
    if vpn is None:
        reason = "forced proxy route (VPN state unknown)"
    plan.routes.append(
        Route(
            "proxy",
            settings.proxy_host,
            settings.proxy_port,
            settings.proxy_user,
            command=f"host {device.uuid}",
            reason=reason,
        )
    )


def _hostvia(device: Device, index: FleetIndex, settings: RouteSettings, plan: _Plan) -> None:
    if device.is_connected_to_vpn and settings.mode != "hostvia":
        return
    if not settings.proxy_user:
        plan.rejected.append(_NO_USER)
        return
    gateways = _siblings(device, index, lambda d: bool(d.is_online and d.is_connected_to_vpn))
    if not gateways:
        where = device.public_address or "an unknown public address"
        plan.rejected.append(
            f"no online, VPN-connected device shares its network ({where}) to act as hostvia gateway"
        )
        return
    for gateway, subnet in gateways:
        target_ip = _target_ip(device, gateway)
        command = f"hostvia {gateway.uuid} {device.uuid}" + (f" {target_ip}" if target_ip else "")
        plan.routes.append(
            Route(
                "hostvia",
                settings.proxy_host,
                settings.proxy_port,
                settings.proxy_user,
                command=command,
                reason=f"off the VPN; through {gateway.name} on the same network "
                f"({device.public_address}{', ' + subnet if subnet else ''})",
            )
        )


def _jump(device: Device, index: FleetIndex, settings: RouteSettings, plan: _Plan) -> None:
    if device.address:
        _inventory_jump(device, index, settings, plan)
        return
    if not settings.on_lan:
        return
    if not _ipv4s(device):
        plan.rejected.append("the API lists no LAN address to jump to")
        return
    gateways = _siblings(device, index, lambda d: bool(d.is_online and _ipv4s(d)))
    if not gateways:
        plan.rejected.append("no online device on its network to jump through")
        return
    for gateway, subnet in gateways:
        target_ip = _target_ip(device, gateway)
        via = Route("direct", str(_ipv4s(gateway)[0]), settings.direct_port, settings.direct_user)
        plan.routes.append(
            Route(
                "jump",
                target_ip or str(_ipv4s(device)[0]),
                settings.direct_port,
                settings.direct_user,
                via=via,
                reason=f"through {gateway.name} on the local network{' (' + subnet + ')' if subnet else ''}",
            )
        )


def _inventory_jump(
    device: Device, index: FleetIndex, settings: RouteSettings, plan: _Plan
) -> None:
    if not device.gateway:
        if settings.mode == "jump":
            plan.rejected.append("the inventory names no gateway to jump through")
        return
    gateway = index.find(device.gateway)
    if gateway is None or gateway.uuid == device.uuid:
        plan.rejected.append(f"gateway {device.gateway!r} is not a device of this fleet")
        return
    if not gateway.address or gateway.gateway:
        plan.rejected.append(f"gateway {gateway.name} has no address orch can reach directly")
        return
    via = Route("direct", gateway.address, gateway.port, gateway.user)
    plan.routes.append(
        Route(
            "jump",
            device.address or "",
            device.port,
            device.user,
            via=via,
            reason=f"inventory gateway {gateway.name}",
        )
    )


_FORCED = {
    "proxy": (_proxy,),
    "hostvia": (_hostvia,),
    "direct": (_direct,),
    "jump": (_jump,),
}
_NO_USER = "no balena username for the SSH proxy (use a user API key or set [balena] ssh_user)"


def _ipv4s(device: Device) -> list[ipaddress.IPv4Address]:
    found = []
    for text in device.local_ips:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if isinstance(ip, ipaddress.IPv4Address) and not ip.is_link_local:
            found.append(ip)
    return found


def _common_subnet(a: Device, b: Device) -> tuple[int, str]:
    """(score, label): 2 for a common /24, 1 for a common /16, 0 for none, 1 when unknown."""
    ips_a, ips_b = _ipv4s(a), _ipv4s(b)
    if not ips_a or not ips_b:
        return 1, ""
    best = (0, "")
    for x in ips_a:
        for y in ips_b:
            for prefix, score in ((24, 2), (16, 1)):
                net = ipaddress.ip_network(f"{x}/{prefix}", strict=False)
                if y in net and score > best[0]:
                    best = (score, str(net))
    return best


def _siblings(device: Device, index: FleetIndex, usable) -> list[tuple[Device, str]]:
    """Usable devices on the same network, best subnet match first, load spread by uuid hash."""
    if not device.public_address:
        return []
    ranked = []
    for other in index.by_public.get(device.public_address, ()):
        if other.uuid == device.uuid or not usable(other):
            continue
        score, subnet = _common_subnet(device, other)
        if score == 0:
            continue
        spread = hashlib.blake2s(f"{device.uuid}/{other.uuid}".encode(), digest_size=4).digest()
        ranked.append((-score, spread, other.uuid, other, subnet))
    ranked.sort(key=lambda item: item[:3])
    return [(item[3], item[4]) for item in ranked[:MAX_GATEWAY_CANDIDATES]]


def _target_ip(device: Device, gateway: Device) -> str | None:
    """The target's LAN address closest to the gateway's (longest common prefix)."""
    ips = _ipv4s(device)
    if not ips:
        return None
    gateway_ips = _ipv4s(gateway)

    def closeness(ip: ipaddress.IPv4Address) -> int:
        return max(
            (32 - (int(ip) ^ int(g)).bit_length() for g in gateway_ips),
            default=0,
        )

    return str(max(ips, key=closeness))
