"""The link probe: parsers on real ping/curl/ip output, the link rules, and a simulated device
with weak Wi-Fi and a lossy LAN diagnosed over real SSH."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncssh
import pytest

from orchestrator.diagnosis.rules import diagnose
from orchestrator.models import Observation, StepOutput
from orchestrator.probes import link
from orchestrator.probes.base import ProbeContext
from orchestrator.probes.registry import PROBES, parse_all, steps_for
from orchestrator.probes.script import build_script, new_nonce, split_output
from orchestrator.sim import SimDeviceSpec, SimFleet
from orchestrator.sim.model import make_uuid

REAL = Path(__file__).parent.parent / "fixtures" / "real"
EXITS = json.loads((REAL / "link_exit_codes.json").read_text())
CTX = ProbeContext()
GW = "gateway=192.168.1.1\n"
ROUTE6 = "default via fe80::1 dev wlan0 proto ra metric 600 pref medium\n"  # iproute2 format


def _real(name: str, prefix: str = "") -> StepOutput:
    return StepOutput(name, prefix + (REAL / f"{name}.txt").read_text(), EXITS[name])


def _step(step: str, fixture: str, prefix: str = "") -> StepOutput:
    out = _real(fixture, prefix)
    return StepOutput(step, out.output, out.exit_code)


def _obs(steps: list[StepOutput]) -> dict[str, object]:
    return {o.key: o.value for o in link.parse({s.name: s for s in steps}, CTX)}


@pytest.mark.parametrize(
    ("fixture", "loss", "rtt"),
    [
        ("ping_iputils_loopback_ok", 0.0, 0.036),
        ("ping_iputils_loss_40", 40.0, 0.120),
        ("ping_iputils_all_lost", 100.0, None),
        ("ping_busybox_loopback_ok", 0.0, 0.069),
        ("ping_busybox_loss_20", 20.0, 0.078),
        ("ping_busybox_all_lost", 100.0, None),
    ],
)
def test_loss_is_computed_from_real_ping_counts(fixture, loss, rtt):
    found = _obs([_step("link.ping", fixture, GW)])
    assert found["link.gateway"] == "192.168.1.1"
    assert found["link.loss_pct"] == loss
    assert found["link.rtt_avg_ms"] == rtt


def test_ping_without_statistics_reports_its_error_not_a_loss():
    found = _obs([_step("link.ping", "ping_iputils_no_route", GW)])
    assert found["link.ping_error"] == "ping: connect: Network is unreachable"
    assert "link.loss_pct" not in found


def test_no_default_gateway_means_no_ping_facts():
    assert _obs([StepOutput("link.ping", "gateway=\n", 0)]) == {}


def test_wifi_signal_of_the_access_point_in_use():
    text = (
        "dev=wlan0\n"
        + (REAL / "nmcli_device_show_wifi_terse.txt").read_text()
        + "-- wifi list\n"
        + (REAL / "nmcli_wifi_list_terse.txt").read_text()
    )
    found = link.parse({"link.wifi": StepOutput("link.wifi", text, 0)}, CTX)
    values = {o.key: o.value for o in found}
    assert values == {"link.interface": "wlan0", "link.type": "wifi", "link.wifi_signal": 34}
    signal = next(o for o in found if o.key == "link.wifi_signal")
    assert signal.evidence == ("wlan0: Wi-Fi 'Depot:Floor 2' signal 34 %",)


def test_terse_fields_unescape_colons_and_backslashes():
    assert link.terse_fields(r"*:34:Depot\:Floor 2:6") == ["*", "34", "Depot:Floor 2", "6"]
    assert link.terse_fields(r" :0:\\backslash net:11")[2] == "\\backslash net"


def test_wired_default_route_or_missing_networkmanager_gives_no_signal():
    wired = "dev=eth0\nGENERAL.TYPE:ethernet\n-- wifi list\n*:20:Other:1\n"
    assert "link.wifi_signal" not in _obs([StepOutput("link.wifi", wired, 0)])
    broken = "dev=eth0\n" + (REAL / "nmcli_not_running.txt").read_text() + "-- wifi list\n"
    assert _obs([StepOutput("link.wifi", broken, 1)]) == {"link.interface": "eth0"}


def test_ipv6_checked_only_with_an_ipv6_default_route():
    none = _obs([_step("link.route6", "ip6_route_default_none")])
    assert none == {"link.ipv6_route": False}
    found = _obs(
        [
            StepOutput("link.route6", ROUTE6, 0),
            StepOutput("link.api_v4", "OK\n200 34.226.166.12 0.052 0.163\n", 0),
            _step("link.api_v6", "curl_ipv6_no_route"),
        ]
    )
    assert found["link.ipv6_route"] is True
    assert found["link.api_v4_outcome"] == "http"
    assert found["link.api_v6_outcome"] == "refused"


def _facts(**values: object) -> list[Observation]:
    return [
        Observation(f"link.{key}", value, (f"{key}={value}",), "link")
        for key, value in values.items()
    ]


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"wifi_signal": 25}, {"link.wifi_weak": ("warning", None)}),
        ({"wifi_signal": 40, "loss_pct": 0.0}, {}),
        ({"loss_pct": 40.0, "gateway": "192.168.1.1"}, {"link.packet_loss": ("error", None)}),
        ({"loss_pct": 20.0}, {"link.packet_loss": ("error", None)}),
        ({"loss_pct": 10.0}, {"link.packet_loss": ("warning", None)}),
        ({"loss_pct": 4.0}, {}),
        ({"loss_pct": 100.0}, {}),
        (
            {"wifi_signal": 25, "loss_pct": 40.0},
            {
                "link.wifi_weak": ("warning", None),
                "link.packet_loss": ("error", "link.wifi_weak"),
            },
        ),
        (
            {"ipv6_route": True, "api_v4_outcome": "http", "api_v6_outcome": "connect_timeout"},
            {"link.ipv6_broken": ("warning", None)},
        ),
        ({"ipv6_route": True, "api_v4_outcome": "http", "api_v6_outcome": "http"}, {}),
        ({"ipv6_route": True, "api_v4_outcome": "http", "api_v6_outcome": "resolve"}, {}),
        ({"ipv6_route": True, "api_v4_outcome": "refused", "api_v6_outcome": "refused"}, {}),
        ({"ipv6_route": False}, {}),
    ],
)
def test_link_rules(facts, expected):
    found = {f.code: (f.severity, f.caused_by) for f in diagnose(_facts(**facts))}
    assert found == expected


def _spec(name: str, **state: object) -> SimDeviceSpec:
    return SimDeviceSpec(name=name, uuid=make_uuid("link-test", name), **state)


async def _diagnose_over_ssh(specs: list[SimDeviceSpec]) -> dict[str, dict[str, str | None]]:
    steps = steps_for(PROBES, CTX.endpoints)
    found: dict[str, dict[str, str | None]] = {}
    async with SimFleet(specs) as fleet:
        known = asyncssh.import_known_hosts("\n".join(fleet.known_hosts_lines()))
        for device in fleet.devices:
            nonce = new_nonce()
            async with asyncssh.connect(
                device.address,
                device.port,
                username="root",
                client_keys=[fleet.client_key],
                known_hosts=known,
            ) as conn:
                result = await conn.run(
                    "sh -s", input=build_script(steps, nonce, 60), encoding=None
                )
            outputs = split_output(result.stdout, nonce, steps).steps
            findings = diagnose(parse_all(PROBES, outputs, CTX))
            found[device.name] = {f.code: f.caused_by for f in findings}
    return found


@pytest.mark.timeout(90)
def test_simulated_devices_show_their_link_over_real_ssh():
    specs = [
        _spec("weak-lossy", wifi_signal=25, gateway_loss_pct=40),
        _spec("ipv6-broken", ipv6="broken"),
        _spec("healthy-dual-stack", wifi_signal=80, ipv6="ok"),
        _spec("healthy-wired"),
    ]
    found = asyncio.run(_diagnose_over_ssh(specs))
    assert found["weak-lossy"] == {"link.wifi_weak": None, "link.packet_loss": "link.wifi_weak"}
    assert found["ipv6-broken"] == {"link.ipv6_broken": None}
    assert found["healthy-dual-stack"] == {}
    assert found["healthy-wired"] == {}
