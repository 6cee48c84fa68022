"""network probe parser on real iproute2 output (a veth in a private netns, 198.18.0.0/15)."""

import ipaddress
import random
from pathlib import Path

from orchestrator.models import StepOutput
from orchestrator.probes import network
from orchestrator.probes.base import ProbeContext

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"


def step(name: str, fixture: str) -> StepOutput:
    return StepOutput(name, (REAL / f"{fixture}.txt").read_text(), exit_code=0)


def test_lan_keys_from_real_ip_output():
    steps = {
        "net.route": step("net.route", "ip_route_default"),
        "net.addr": step("net.addr", "ip_addr"),
        "net.neigh": step("net.neigh", "ip_neigh"),
    }
    got = {o.key: o.value for o in network.PROBE.parse(steps, ProbeContext())}
    assert got == {
        "net.gateway_ip": "198.18.5.1",
        "net.interface": "eth0",
        "net.subnet": "198.18.5.0/24",
        "net.gateway_mac": "02:42:c6:12:05:01",
    }


def test_no_default_route_gives_no_keys():
    steps = {"net.route": StepOutput("net.route", "", exit_code=0)}
    assert network.PROBE.parse(steps, ProbeContext()) == []


def test_subnet_is_what_ipaddress_says_on_random_addresses():
    rng = random.Random(3)
    pieces = ["0", "1", "9", "10", "01", "00", "127", "198", "255", "256", "999", "1000", "٣", ""]
    for _ in range(5000):
        octets = [
            rng.choice(pieces) if rng.random() < 0.3 else str(rng.randrange(256))
            for _ in range(rng.choice([4, 4, 4, 3, 5]))
        ]
        length = rng.choice([str(rng.randrange(34)), "024", "", "x", "٢"])
        cidr = ".".join(octets) + rng.choice(["/", "/", ""]) + length
        try:
            expected = str(ipaddress.ip_interface(cidr).network)
        except ValueError:
            expected = None
        if "/" not in cidr:
            expected = None  # the probe reads address/prefix pairs only
        assert network.ipv4_subnet(cidr) == expected, cidr


def test_an_impossible_address_costs_the_subnet_only():
    steps = {
        "net.route": StepOutput("net.route", "default via 198.18.5.1 dev eth0\n", exit_code=0),
        "net.addr": StepOutput(
            "net.addr",
            "2: eth0    inet 198.18.5.952/24 brd 198.18.5.255 scope global eth0\n"
            "2: eth0    inet 198.18.6.7/23 brd 198.18.7.255 scope global eth0\n",
            exit_code=0,
        ),
    }
    got = {o.key: o.value for o in network.PROBE.parse(steps, ProbeContext())}
    assert got == {
        "net.gateway_ip": "198.18.5.1",
        "net.interface": "eth0",
        "net.subnet": "198.18.6.0/23",
    }
