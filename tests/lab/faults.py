"""Fault injection, each the way the seed (network-debugging.md) produces it.

Router faults (iptables in the site router namespace):

- ``ntp_blocked`` (site): outbound UDP 123 dropped (6.1/6.4: "the NTP port might have been blocked").
- ``vpn_blocked`` (site): TCP 443 to Cloudlink rejected for the whole site (6.3: every device on
  the network fails the VPN: "the network is being overly restrictive").
- ``cloudlink_dropped`` (device): TCP 443 to Cloudlink silently dropped for one device (6.4).
- ``dpi`` (device): the device's TCP 443 to the API is redirected to a TLS-terminating proxy on
  the router that presents a certificate from a foreign CA (6.4.1).

Device faults (set up when the device is built; see :class:`DeviceFaults`):

- ``clock_skewed``: chronyd stopped and the clock years behind (6.1 ``date -s "23 MAR 2017"``):
  libfaketime is preloaded into every process of the device (``/etc/ld.so.preload`` in the
  device's own ``/etc`` overlay), so sshd, OpenVPN, curl and openssl all see the old date.
- ``dns_dead_upstream``: ``dnsServers`` set to a dead address and ``/etc/resolv.dnsmasq`` moved
  away (6.2), so dnsmasq has only the dead server.
- ``supervisor_500``: the supervisor's ``/v1/healthy`` answers 500.
- ``vpn_down``: OpenVPN is not running (stopped), so only ``hostvia`` through a sibling reaches it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from tests.lab import topology
from tests.lab.netns import Lab, in_ns, run
from tests.lab.pki import Pair

FAKE_OFFSET_S = 250_000_000
"""How far the skewed clock is behind (about 7.9 years, like the seed's 2017 date)."""
DPI_PORT = 8443


def apply_site_fault(router_ns: str, site: topology.Site, fault: str) -> None:
    """Install a site-wide firewall fault in the router."""
    if fault == "ntp_blocked":
        rule = ["-A", "FORWARD", "-i", "br0", "-p", "udp", "--dport", "123", "-j", "DROP"]
    elif fault == "vpn_blocked":
        rule = [
            "-A",
            "FORWARD",
            "-i",
            "br0",
            "-d",
            topology.CLOUDLINK_IP,
            "-p",
            "tcp",
            "--dport",
            "443",
            "-j",
            "REJECT",
            "--reject-with",
            "tcp-reset",
        ]
    else:
        raise ValueError(f"unknown site fault {fault}")
    run(in_ns(router_ns, ["iptables", *rule]))


def apply_router_device_fault(
    lab: Lab, router_ns: str, device: topology.DeviceSpec, dpi: Pair | None, work: Path
) -> None:
    """Install a per-device fault in its site router (no-op for device-side faults)."""
    if device.fault == "cloudlink_dropped":
        run(
            in_ns(
                router_ns,
                [
                    "iptables",
                    "-A",
                    "FORWARD",
                    "-s",
                    device.lan_ip,
                    "-d",
                    topology.CLOUDLINK_IP,
                    "-p",
                    "tcp",
                    "--dport",
                    "443",
                    "-j",
                    "DROP",
                ],
            )
        )
    elif device.fault == "dpi":
        assert dpi is not None
        standin = Path(__file__).parent / "standins" / "tls_intercept.py"
        lab.spawn(
            in_ns(
                router_ns,
                [
                    sys.executable,
                    str(standin),
                    f"0.0.0.0:{DPI_PORT}",
                    str(dpi.cert),
                    str(dpi.key),
                    f"{topology.API_IP}:443",
                ],
            ),
            work / f"dpi-{device.name}.log",
        )
        run(
            in_ns(
                router_ns,
                [
                    "iptables",
                    "-t",
                    "nat",
                    "-A",
                    "PREROUTING",
                    "-s",
                    device.lan_ip,
                    "-d",
                    topology.API_IP,
                    "-p",
                    "tcp",
                    "--dport",
                    "443",
                    "-j",
                    "REDIRECT",
                    "--to-ports",
                    str(DPI_PORT),
                ],
            )
        )


@dataclass(frozen=True)
class DeviceFaults:
    """How a device's own daemons and files differ from a healthy one."""

    fake_time: bool = False
    chronyd: bool = True
    dead_dns: bool = False
    supervisor_unhealthy: bool = False
    openvpn: bool = True

    @classmethod
    def of(cls, device: topology.DeviceSpec) -> DeviceFaults:
        fault = device.fault
        return cls(
            fake_time=fault == "clock_skewed",
            chronyd=fault != "clock_skewed",
            dead_dns=fault == "dns_dead_upstream",
            supervisor_unhealthy=fault == "supervisor_500",
            openvpn=fault != "vpn_down",
        )
