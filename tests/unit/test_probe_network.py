"""network probe parser on real iproute2 output (a veth in a private netns, 198.18.0.0/15)."""

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
