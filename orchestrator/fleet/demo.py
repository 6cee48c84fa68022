"""The embedded demo fleet: simulated balenaOS devices, one per failure mode of the seed.

``orch diagnose --demo`` starts it with ``start_demo_fleet()`` and lists it through
``DemoFleetSource``. Device names say their scenario. Public addresses come from the
documentation ranges and LANs from private ranges: both are data only, never contacted.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

from orchestrator.models import Device
from orchestrator.sim.model import (
    BALENA_HOSTS,
    Lan,
    SimDeviceSpec,
    apply_scenario,
    lan_for,
    make_fleet,
    make_uuid,
    with_host_ip,
)
from orchestrator.sim.server import SimFleet

DEPOT3_PUBLIC_ADDRESS = "203.0.113.7"
DEPOT3_LAN = Lan("192.168.50.0/24", "192.168.50.1", "00:1b:21:3a:50:01", "192.168.50.21")


def _device(name: str, index: int, scenario: str, public: str, **fields: object) -> SimDeviceSpec:
    lan = lan_for(index, "demo")
    base = SimDeviceSpec(
        name=name,
        uuid=make_uuid("demo", name),
        public_address=public,
        lan=lan,
        dns_upstreams=(("8.8.8.8", True), (lan.gateway_ip, True)),
    )
    return replace(apply_scenario(base, scenario), **fields)


def demo_specs() -> list[SimDeviceSpec]:
    """The demo fleet: every scenario once, a gateway pair, and site depot-3 (4 devices)."""
    specs = [
        _device("demo-healthy", 1, "healthy", "198.51.100.11"),
        _device("demo-clock-skewed", 2, "clock-skewed", "198.51.100.12"),
        _device("demo-ntp-blocked", 3, "ntp-blocked", "198.51.100.13"),
        _device("demo-dns-broken", 4, "dns-broken", "198.51.100.14"),
        _device("demo-vpn-blocked", 5, "vpn-blocked", "198.51.100.15"),
        _device("demo-tls-intercepted", 6, "tls-intercepted", "192.0.2.16"),
        _device("demo-supervisor-unhealthy", 7, "supervisor-unhealthy", "192.0.2.17"),
    ]
    gateway = _device("demo-gateway", 8, "healthy", "192.0.2.18", is_gateway=True, site="lab-8")
    target = replace(
        _device("demo-gateway-only", 8, "healthy", "192.0.2.18", site="lab-8"),
        lan=with_host_ip(gateway.lan, 31),
        lan_only=True,
        gateway=gateway.name,
    )
    specs += [gateway, target]
    for number in range(1, 5):
        name = f"demo-depot3-{number}"
        specs.append(
            replace(
                _device(name, 50, "healthy", DEPOT3_PUBLIC_ADDRESS),
                scenario="site-vpn-blocked",
                site="depot-3",
                labels=("site:depot-3",),
                lan=with_host_ip(DEPOT3_LAN, 20 + number),
                dns_upstreams=(("8.8.8.8", True), (DEPOT3_LAN.gateway_ip, True)),
                rules=((BALENA_HOSTS["cloudlink"], 443, "drop"),),
            )
        )
    return specs


class DemoFleetSource:
    """A ``FleetSource`` over a running demo (or any simulated) fleet."""

    def __init__(self, fleet: SimFleet, label: str = "demo") -> None:
        self._fleet = fleet
        self._label = label

    @property
    def label(self) -> str:
        """`demo`."""
        return self._label

    def list_devices(self) -> list[Device]:
        """The fleet's devices, addressed on loopback (or through their gateway)."""
        return self._fleet.devices


@contextlib.asynccontextmanager
async def start_demo_fleet(
    workdir: Path | None = None, size: int | None = None
) -> AsyncIterator[SimFleet]:
    """Start the demo fleet; yields the running ``SimFleet`` (keys: ``client_key``,
    ``write_client_files``; source: ``DemoFleetSource(fleet)``).

    ``size`` replaces the 13 scenario devices with a generated mixed fleet of that many devices.
    """
    specs = make_fleet(size) if size else demo_specs()
    async with SimFleet(specs, workdir=workdir) as fleet:
        yield fleet
