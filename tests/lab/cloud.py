"""The lab cloud namespace (balenaCloud stand-ins) and one router namespace per site.

Cloud: HTTPS endpoints (API, Cloudlink, registry, delta) with lab-CA certificates, an OpenVPN
server on Cloudlink's TCP 443 (``port-share`` hands non-VPN traffic to Cloudlink's HTTPS), chronyd
as an NTP server (``local stratum``, ``-x``), dnsmasq as the upstream DNS server for the lab names,
and the SSH proxy stand-in. orch itself runs in this namespace ("on the internet"), with routes to
each site's LAN through its router for direct SSH.

Routers: NAT to the uplink (orch's DNS control resolver is the lab DNS: `[endpoints] dns_control`),
and the site's firewall faults (see :mod:`tests.lab.faults`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.lab import faults, topology
from tests.lab.netns import Lab, in_ns, run
from tests.lab.pki import Pair, issue

STANDINS = Path(__file__).parent / "standins"
CLOUD = "cloud"


def build_cloud(
    lab: Lab, ca: Pair, work: Path, proxy_keys: dict[str, Path], registry: dict[str, str]
) -> str:
    """Create the cloud namespace and start its services; returns the namespace name."""
    ns = lab.add_namespace(CLOUD)
    for ip in (*topology.NAMES.values(), topology.DNS_IP):
        run(in_ns(ns, ["ip", "addr", "add", f"{ip}/32", "dev", "lo"]))
    run(in_ns(ns, ["ip", "route", "add", "blackhole", f"{topology.DEAD_DNS_IP}/32"]))
    certs = work / "cloud"
    certs.mkdir()
    listeners = []
    for role, ip, port in (
        ("api", topology.API_IP, 443),
        ("cloudlink", "127.0.0.1", 8443),
        ("registry", topology.REGISTRY_IP, 443),
        ("delta", topology.DELTA_IP, 443),
    ):
        pair = issue(ca, certs, role, f"{role}.lab.test", "serverAuth")
        listeners.append(f"{role}:{ip}:{port}:{pair.cert}:{pair.key}")
    lab.spawn(
        in_ns(ns, [sys.executable, str(STANDINS / "https_endpoints.py"), *listeners]),
        work / "cloud-https.log",
    )
    _start_dns(lab, ns, work)
    _start_ntp(lab, ns, work)
    _start_vpn_server(lab, ns, ca, work, registry)
    registry_file = work / "proxy-registry.json"
    registry_file.write_text(json.dumps(registry))
    lab.spawn(
        in_ns(
            ns,
            [
                sys.executable,
                str(STANDINS / "ssh_proxy.py"),
                topology.PROXY_IP,
                "22",
                "labuser",
                str(proxy_keys["authorized"]),
                str(proxy_keys["host_key"]),
                str(proxy_keys["device_key"]),
                str(registry_file),
            ],
        ),
        work / "proxy.log",
    )
    return ns


def _start_dns(lab: Lab, ns: str, work: Path) -> None:
    conf = work / "cloud-dnsmasq.conf"
    lines = [
        "no-resolv",
        "no-hosts",
        f"listen-address={topology.DNS_IP}",
        "bind-interfaces",
        "log-queries",
        f"log-facility={work / 'cloud-dnsmasq.log'}",
    ]
    lines += ["local=/lab.test/"]
    lines += [f"host-record={name},{ip}" for name, ip in topology.NAMES.items()]
    conf.write_text("\n".join(lines) + "\n")
    lab.spawn(
        in_ns(ns, ["dnsmasq", "-k", f"--conf-file={conf}", "--user=root", "--pid-file="]),
        work / "cloud-dnsmasq.out",
    )


def _start_ntp(lab: Lab, ns: str, work: Path) -> None:
    conf = work / "cloud-chrony.conf"
    conf.write_text(
        f"local stratum 8\nallow 198.18.0.0/15\nbindaddress {topology.NTP_IP}\n"
        f"pidfile {work / 'cloud-chronyd.pid'}\nbindcmdaddress /\ncmdport 0\n"
    )
    lab.spawn(
        in_ns(ns, ["chronyd", "-d", "-x", "-u", "root", "-f", str(conf)]),
        work / "cloud-chronyd.log",
    )


def _start_vpn_server(lab: Lab, ns: str, ca: Pair, work: Path, registry: dict[str, str]) -> None:
    vpn = work / "vpn"
    vpn.mkdir()
    server = issue(ca, vpn, "server", "cloudlink.lab.test", "serverAuth")
    ccd = vpn / "ccd"
    ccd.mkdir()
    for uuid, ip in registry.items():
        (ccd / uuid).write_text(f"ifconfig-push {ip} 255.255.255.0\n")
    args = [
        "openvpn",
        "--mode",
        "server",
        "--tls-server",
        "--proto",
        "tcp-server",
        "--local",
        topology.CLOUDLINK_IP,
        "--port",
        "443",
        "--port-share",
        "127.0.0.1",
        "8443",
        "--dev",
        "tun",
        "--dev-type",
        "tun",
        "--topology",
        "subnet",
        "--ifconfig",
        topology.VPN_SERVER_IP,
        "255.255.255.0",
        "--push",
        "topology subnet",
        "--client-config-dir",
        str(ccd),
        "--ccd-exclusive",
        "--ca",
        str(ca.cert),
        "--cert",
        str(server.cert),
        "--key",
        str(server.key),
        "--dh",
        "none",
        "--keepalive",
        "10",
        "60",
        "--disable-dco",
        "--verb",
        "3",
    ]
    lab.spawn(in_ns(ns, args), work / "cloud-openvpn.log")


def build_router(lab: Lab, site: topology.Site, cloud_ns: str, work: Path, ca: Pair) -> str:
    """A site router: uplink to the cloud, a LAN bridge, NAT and the site's firewall faults."""
    ns = lab.add_namespace(f"r-{site.name}")
    up, down = f"olu{site.index}c", f"olu{site.index}r"
    lab.veth(cloud_ns, up, ns, down)
    run(in_ns(cloud_ns, ["ip", "addr", "add", f"{site.uplink_cloud_ip}/24", "dev", up]))
    run(in_ns(cloud_ns, ["ip", "link", "set", up, "up"]))
    run(in_ns(cloud_ns, ["ip", "route", "add", site.lan, "via", site.public_ip]))
    run(in_ns(ns, ["ip", "addr", "add", f"{site.public_ip}/24", "dev", down]))
    run(in_ns(ns, ["ip", "link", "set", down, "up"]))
    run(in_ns(ns, ["ip", "route", "add", "default", "via", site.uplink_cloud_ip]))
    run(in_ns(ns, ["ip", "link", "add", "br0", "type", "bridge"]))
    run(in_ns(ns, ["ip", "addr", "add", f"{site.lan_gateway}/24", "dev", "br0"]))
    run(in_ns(ns, ["ip", "link", "set", "br0", "up"]))
    for rule in (["-t", "nat", "-A", "POSTROUTING", "-o", down, "-j", "MASQUERADE"],):
        run(in_ns(ns, ["iptables", *rule]))
    for fault in site.faults:
        faults.apply_site_fault(ns, site, fault)
    return ns
