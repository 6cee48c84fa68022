"""The device lab: orch diagnoses real daemons with seed faults injected (``pytest -m lab``).

Each device carries one fault (tests/lab/topology.py); orch must name exactly its root cause,
both over a direct inventory route (the real ``orch diagnose`` CLI) and through the lab's balena
SSH proxy (``host`` for VPN-connected devices, ``hostvia`` through a LAN sibling for the rest).
"""

from __future__ import annotations

import os
import threading

import pytest

from tests.lab import capture, orch_run, topology
from tests.lab.builder import LabWorld

pytestmark = pytest.mark.lab

EXPECTED: dict[str, list[str]] = {
    "a-healthy": [],
    "a-clock": ["time.chronyd_stopped"],
    "a-dns": ["dns.resolver_file_missing", "dns.upstream_dead"],
    "a-supervisor": ["supervisor.unhealthy"],
    "a-dpi": ["dpi.tls_intercepted"],
    "a-cloudlink": ["firewall.tcp_dropped"],
    "a-novpn": ["vpn.down"],
    "b-ntp": ["time.ntp_unreachable"],
    "c-1": ["firewall.tcp_rejected"],
    "c-2": ["firewall.tcp_rejected"],
    "c-3": ["firewall.tcp_rejected"],
    "c-4": ["firewall.tcp_rejected"],
}
"""Root causes (findings nothing else explains) orch must report per device."""

EXPLAINED: dict[str, dict[str, str]] = {
    "a-clock": {
        "time.clock_skewed": "time.chronyd_stopped",
        "vpn.tls_failed": "time.clock_skewed",
        "api.tls_failed": "time.clock_skewed",
    },
    "a-dns": {"api.unreachable": "dns.upstream_dead"},
    "a-dpi": {"api.tls_failed": "dpi.tls_intercepted"},
    "a-cloudlink": {"vpn.endpoint_blocked": "firewall.tcp_dropped"},
}
"""Symptoms that must be attributed to the root cause (the seed's cascades), not reported alone."""


@pytest.fixture(scope="session")
def runs(world: LabWorld) -> dict[str, object]:
    """Both orch runs over the same lab, concurrently (direct CLI and the proxy sweep)."""
    results: dict[str, object] = {}

    def direct() -> None:
        results["direct"] = orch_run.diagnose_cli(world, "direct.db")

    def proxy() -> None:
        results["proxy"] = orch_run.sweep_via_proxy(world, "proxy.db")

    threads = [threading.Thread(target=t) for t in (direct, proxy)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    missing = [name for name in ("direct", "proxy") if name not in results]
    assert not missing, f"orch run(s) {missing} failed; see the captured output above"
    return results


def _by_name(document: dict) -> dict[str, dict]:
    return {device["name"]: device for device in document["devices"]}


def test_lab_has_every_scenario(world: LabWorld) -> None:
    assert set(EXPECTED) == set(world.devices)
    assert len({spec.fault for spec in topology.devices()}) >= 9


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_direct_cli_names_the_root_cause(runs: dict, name: str) -> None:
    _exit, document = runs["direct"]
    device = _by_name(document)[name]
    assert device["reachable"], device["error"]
    assert device["route"].startswith("direct root@")
    assert sorted(device["root_causes"]) == sorted(EXPECTED[name]), device["findings"]
    explained = {f["code"]: f["caused_by"] for f in device["findings"]}
    for code, cause in EXPLAINED.get(name, {}).items():
        assert explained.get(code) == cause, (code, device["findings"])


def test_healthy_device_has_no_findings(runs: dict) -> None:
    _exit, document = runs["direct"]
    assert _by_name(document)["a-healthy"]["findings"] == []
    assert _by_name(runs["proxy"])["a-healthy"]["findings"] == []


def test_cli_exit_code_says_problems_found(runs: dict) -> None:
    exit_code, _document = runs["direct"]
    assert exit_code == 1


def test_site_blocking_the_vpn_is_one_network_finding(runs: dict) -> None:
    _exit, document = runs["direct"]
    charlie = {spec.uuid for spec in topology.devices() if spec.site is topology.CHARLIE}
    flagged = [n for n in document["network_findings"] if set(n["devices"]) == charlie]
    assert flagged, document["network_findings"]
    assert flagged[0]["category"] == "firewall"
    assert flagged[0]["network"]["kind"] == "lan"
    assert flagged[0]["network"]["value"].startswith(topology.CHARLIE.lan_gateway + "/")
    others = [n for n in document["network_findings"] if set(n["devices"]) - charlie]
    assert not others, others


def test_proxy_routes_reach_vpn_devices_with_host_and_the_rest_with_hostvia(runs: dict) -> None:
    devices = _by_name(runs["proxy"])
    for spec in topology.devices():
        device = devices[spec.name]
        if spec.site is topology.CHARLIE:
            continue
        assert device["reachable"], (spec.name, device["error"])
        verb = "(host " if spec.vpn_expected_up else "(hostvia "
        assert verb in device["route"], (spec.name, device["route"])
        assert sorted(device["root_causes"]) == sorted(EXPECTED[spec.name]), device["findings"]


def test_site_without_vpn_or_gateway_is_unreachable_through_the_proxy(runs: dict) -> None:
    document = runs["proxy"]
    devices = _by_name(document)
    charlie = {spec.uuid for spec in topology.devices() if spec.site is topology.CHARLIE}
    for spec in topology.devices():
        if spec.site is topology.CHARLIE:
            assert not devices[spec.name]["reachable"]
            assert "hostvia gateway" in devices[spec.name]["error"]
    flagged = [n for n in document["network_findings"] if set(n["devices"]) == charlie]
    assert flagged and flagged[0]["unreachable"], document["network_findings"]
    assert flagged[0]["code"] == "access.network_unreachable"


@pytest.mark.skipif(
    not os.environ.get("ORCH_LAB_CAPTURE"),
    reason="set ORCH_LAB_CAPTURE=1 to refresh tests/fixtures/lab",
)
def test_capture_real_output(world: LabWorld) -> None:
    written = capture.capture_all(world)
    assert all(path.stat().st_size > 0 for path in written)
