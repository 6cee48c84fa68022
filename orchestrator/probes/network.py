"""network: the LAN keys that group devices for network-wide patterns.

Observations: ``net.gateway_ip``, ``net.interface``, ``net.gateway_mac`` (from
``ip neigh show``), ``net.subnet`` (CIDR of the default-route interface's IPv4 address).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from orchestrator.models import Observation, StepOutput
from orchestrator.probes.base import Endpoints, ProbeContext, Step, make_probe, step_output

NAME = "network"
_DEFAULT = re.compile(r"^default\s+via\s+(\S+)(?:.*?\sdev\s+(\S+))?", re.MULTILINE)
_ADDR = re.compile(r"^\d+:\s+(\S+)\s+inet\s+(\d+\.\d+\.\d+\.\d+/\d+)", re.MULTILINE)
_NEIGH = re.compile(r"^(\S+)\s+dev\s+(\S+)\s+lladdr\s+([0-9a-fA-F:]{17})", re.MULTILINE)


def build_steps(endpoints: Endpoints) -> tuple[Step, ...]:
    """Default route, IPv4 addresses and the neighbour table."""
    return (
        Step("net.route", "ip -4 route show default", timeout_s=5),
        Step("net.addr", "ip -4 -o addr show", timeout_s=5),
        Step("net.neigh", "ip neigh show", timeout_s=5),
    )


def parse(steps: Mapping[str, StepOutput], ctx: ProbeContext) -> list[Observation]:
    """Gateway IP and MAC, and the subnet of the default interface."""
    route = step_output(steps, "net.route")
    match = _DEFAULT.search(route.output) if route else None
    if match is None:
        return []
    gateway, interface = match.group(1), match.group(2)
    found = [Observation("net.gateway_ip", gateway, (match.group(0),), NAME)]
    if interface:
        found.append(Observation("net.interface", interface, (match.group(0),), NAME))
    addr = step_output(steps, "net.addr")
    for name, cidr in _ADDR.findall(addr.output if addr else ""):
        if interface in (None, name) and (subnet := ipv4_subnet(cidr)) is not None:
            found.append(Observation("net.subnet", subnet, (f"{name} inet {cidr}",), NAME))
            break
    neigh = step_output(steps, "net.neigh")
    for line in (neigh.output if neigh else "").splitlines():
        entry = _NEIGH.match(line)
        if entry and entry.group(1) == gateway:
            found.append(Observation("net.gateway_mac", entry.group(3).lower(), (line,), NAME))
            break
    return found


def ipv4_subnet(cidr: str) -> str | None:
    """The network of an IPv4 ``address/prefix``, written as ``ipaddress`` writes it; None when
    ``ipaddress`` would refuse it (an octet over 255 or with a leading zero, a prefix over 32).

    A few integer operations instead of ``ipaddress.ip_interface``, ~20 us a device.
    """
    address, slash, length = cidr.partition("/")
    octets = address.split(".")
    if not slash or len(octets) != 4 or not (length.isascii() and length.isdigit()):
        return None
    bits = int(length)
    if bits > 32:
        return None
    value = 0
    for octet in octets:
        if not (octet.isascii() and octet.isdigit()) or len(octet) > 3 or octet[0] == "0" != octet:
            return None
        number = int(octet)
        if number > 255:
            return None
        value = value << 8 | number
    value &= (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}/{bits}"


PROBE = make_probe(NAME, "LAN keys: default gateway IP and MAC, subnet", build_steps, parse)
