"""The lab's small internet: addresses, sites and the devices with the fault each one carries.

Every address is in 198.18.0.0/15 and exists only inside lab namespaces:

- cloud service addresses 198.18.1.0/24 (on the cloud namespace's loopback), one per endpoint;
- site uplinks 198.18.<10+i>.0/24 (cloud .1, router .2 = the site's public address);
- site LANs 198.19.<i>.0/24 (router .1, devices .10 and up);
- the VPN 198.19.128.0/24 (server .1, device k gets .<10+k>, pushed by the OpenVPN server);
- a dead DNS server 198.19.255.254 (blackholed in the cloud: queries time out, as with 1.2.3.4).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

API_IP = "198.18.1.1"
CLOUDLINK_IP = "198.18.1.2"
"""Cloudlink: the OpenVPN server on TCP 443, sharing the port with its HTTPS endpoint."""
REGISTRY_IP = "198.18.1.3"
DELTA_IP = "198.18.1.4"
DNS_IP = "198.18.1.5"
NTP_IP = "198.18.1.6"
PROXY_IP = "198.18.1.7"
DEAD_DNS_IP = "198.19.255.254"
VPN_SERVER_IP = "198.19.128.1"

NAMES = {
    "api.lab.test": API_IP,
    "cloudlink.lab.test": CLOUDLINK_IP,
    "registry.lab.test": REGISTRY_IP,
    "delta.lab.test": DELTA_IP,
    "ntp.lab.test": NTP_IP,
    "ssh.lab.test": PROXY_IP,
}
ENDPOINTS = {
    "api": "https://api.lab.test",
    "cloudlink": "https://cloudlink.lab.test",
    "registry": "https://registry.lab.test",
    "delta": "https://delta.lab.test",
    "ntp_host": "ntp.lab.test",
}


@dataclass(frozen=True)
class Site:
    """A site: a router (NAT + firewall) with a LAN of devices."""

    name: str
    index: int
    faults: tuple[str, ...] = ()
    """Site-wide router faults: ``ntp_blocked``, ``vpn_blocked``."""

    @property
    def public_ip(self) -> str:
        return f"198.18.{10 + self.index}.2"

    @property
    def uplink_cloud_ip(self) -> str:
        return f"198.18.{10 + self.index}.1"

    @property
    def lan_gateway(self) -> str:
        return f"198.19.{self.index}.1"

    @property
    def lan(self) -> str:
        return f"198.19.{self.index}.0/24"


@dataclass(frozen=True)
class DeviceSpec:
    """One lab device and the single fault injected into it (``""`` = healthy)."""

    name: str
    site: Site
    slot: int
    """Position on its LAN (address .10 + slot)."""
    number: int
    """Lab-wide index (VPN address .10 + number)."""
    fault: str = ""
    expected: tuple[str, ...] = field(default=())
    """Root-cause codes orch must report for this device."""

    @property
    def uuid(self) -> str:
        return hashlib.md5(f"orch-lab/{self.name}".encode()).hexdigest()

    @property
    def short(self) -> str:
        return self.uuid[:7]

    @property
    def lan_ip(self) -> str:
        return f"198.19.{self.site.index}.{10 + self.slot}"

    @property
    def vpn_ip(self) -> str:
        return f"198.19.128.{10 + self.number}"

    @property
    def vpn_expected_up(self) -> bool:
        return self.fault in ("", "supervisor_500", "dpi", "ntp_blocked") and (
            "vpn_blocked" not in self.site.faults
        )


ALPHA = Site("alpha", 1)
BRAVO = Site("bravo", 2, faults=("ntp_blocked",))
CHARLIE = Site("charlie", 3, faults=("vpn_blocked",))

_PLAN: tuple[tuple[str, Site, str], ...] = (
    ("a-healthy", ALPHA, ""),
    ("a-clock", ALPHA, "clock_skewed"),
    ("a-dns", ALPHA, "dns_dead_upstream"),
    ("a-supervisor", ALPHA, "supervisor_500"),
    ("a-dpi", ALPHA, "dpi"),
    ("a-cloudlink", ALPHA, "cloudlink_dropped"),
    ("a-novpn", ALPHA, "vpn_down"),
    ("b-ntp", BRAVO, "ntp_blocked"),
    ("c-1", CHARLIE, "vpn_blocked"),
    ("c-2", CHARLIE, "vpn_blocked"),
    ("c-3", CHARLIE, "vpn_blocked"),
    ("c-4", CHARLIE, "vpn_blocked"),
)
SITES = (ALPHA, BRAVO, CHARLIE)


def devices() -> list[DeviceSpec]:
    """Every lab device, in a stable order."""
    slots: dict[str, int] = {}
    found = []
    for number, (name, site, fault) in enumerate(_PLAN):
        slot = slots.get(site.name, 0)
        slots[site.name] = slot + 1
        found.append(DeviceSpec(name, site, slot, number, fault))
    return found
