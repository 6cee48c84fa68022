"""Network-wide patterns: the network is blamed only when its devices clearly fail together."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.diagnosis.patterns import (
    PatternSettings,
    attribute,
    find_patterns,
    network_keys,
)
from orchestrator.models import Device, DeviceReport, Finding, NetworkKeys

# Evidence lines in the shape the probes record them (seed 6.3 / 6.4 and curl's own messages).
VPN_EVIDENCE = (
    "openvpn[2632]: TCP: connect to [AF_INET]52.4.252.97:443 failed: Connection timed out",
    "curl: (28) Failed to connect to cloudlink.balena-cloud.com port 443 after 10001 ms: "
    "Timeout was reached",
)
FINDINGS = {
    "vpn.endpoint_blocked": Finding(
        "vpn.endpoint_blocked",
        "vpn",
        "error",
        "VPN endpoint unreachable on TCP 443",
        remediation="Allow outbound TCP 443 to cloudlink.balena-cloud.com.",
    ),
    "time.ntp_blocked": Finding(
        "time.ntp_blocked",
        "time",
        "error",
        "No NTP source reachable",
        evidence=("chronyd[812]: Can't synchronise: no selectable sources",),
    ),
    "time.chronyd_stopped": Finding(
        "time.chronyd_stopped", "time", "error", "chronyd is not running"
    ),
    "dns.upstream_unreachable": Finding(
        "dns.upstream_unreachable",
        "dns",
        "error",
        "DNS upstream does not answer",
        evidence=("curl: (6) Could not resolve host: api.balena-cloud.com",),
    ),
    "dpi.tls_intercepted": Finding(
        "dpi.tls_intercepted",
        "dpi",
        "error",
        "TLS to balenaCloud is re-signed by a middlebox",
        evidence=("depth=1 C = IE, CN = RCSI-TLS-PROTECT", "verify error:num=20"),
    ),
    "supervisor.unhealthy": Finding(
        "supervisor.unhealthy", "supervisor", "error", "Supervisor /v1/healthy returns 500"
    ),
    "firewall.registry_blocked": Finding(
        "firewall.registry_blocked", "firewall", "error", "Registry unreachable on TCP 443"
    ),
    "api.ping_ok": Finding("api.ping_ok", "api", "info", "API answers /ping"),
}
CASCADE = Finding(
    "vpn.tls_not_yet_valid",
    "vpn",
    "error",
    "VPN certificate is not yet valid",
    caused_by="time.chronyd_stopped",
)


def report(
    uuid: str,
    *codes: str,
    lan: str | None = None,
    public: str | None = None,
    site: str | None = None,
    reachable: bool = True,
    error_kind: str | None = None,
    evidence: tuple[str, ...] = (),
) -> DeviceReport:
    """A device report with the named root-cause findings, placed on a LAN (gateway octet)."""
    findings = tuple(replace(FINDINGS[c], evidence=FINDINGS[c].evidence + evidence) for c in codes)
    if "time.chronyd_stopped" in codes:
        findings += (CASCADE,)
    network = NetworkKeys(
        public_address=public,
        gateway_ip=f"198.18.{lan}.1" if lan else None,
        gateway_mac=f"02:42:C6:12:{int(lan):02X}:01" if lan else None,
        subnet=f"198.18.{lan}.0/24" if lan else None,
        site=site,
    )
    return DeviceReport(
        uuid=uuid,
        name=f"demo-{uuid}",
        reachable=reachable,
        error="connect timed out" if not reachable else None,
        error_kind=error_kind if error_kind else (None if reachable else "timeout"),
        findings=findings if reachable else (),
        network=network,
    )


def lan_value(lan: str) -> str:
    return f"198.18.{lan}.1/02:42:c6:12:{int(lan):02x}:01"


def demo_fleet() -> list[DeviceReport]:
    """Like `orch diagnose --demo`: a 4-device site failing the VPN, 7 devices with one story each."""
    depot = [
        report(
            f"depot-3-{i}", "vpn.endpoint_blocked", lan="3", public="203.0.113.7", site="depot-3"
        )
        for i in range(1, 5)
    ]
    office = "198.51.100.20"
    singles = [
        report("healthy", "api.ping_ok", lan="10", public=office),
        report("clock-skewed", "time.chronyd_stopped", lan="11", public=office),
        report("ntp-blocked", "time.ntp_blocked", lan="12", public=office),
        report("dns-broken", "dns.upstream_unreachable", lan="13", public=office),
        report("vpn-blocked", "vpn.endpoint_blocked", lan="14", public=office),
        report("dpi", "dpi.tls_intercepted", lan="15", public=office),
        report("supervisor-unhealthy", "supervisor.unhealthy", lan="16", public=office),
    ]
    return depot + singles


def test_demo_fleet_flags_exactly_the_failing_site_lan() -> None:
    findings = find_patterns(demo_fleet())
    assert len(findings) == 1
    (finding,) = findings
    assert (finding.kind, finding.value) == ("lan", lan_value("3"))
    assert (finding.category, finding.code) == ("vpn", "vpn.endpoint_blocked")
    assert finding.devices == ("depot-3-1", "depot-3-2", "depot-3-3", "depot-3-4")
    assert (finding.affected, finding.total, finding.unreachable) == (4, 4, False)
    assert finding.summary == (
        f"LAN {lan_value('3')} (site: depot-3) blocks TCP 443 to cloudlink: 4 of 4 devices"
    )
    assert "cloudlink.balena-cloud.com" in finding.remediation


def test_plain_fisher_is_too_conservative_for_the_demo_but_mid_p_is_not() -> None:
    # 4/4 on the site vs 1/7 elsewhere: exact p = 5/330 = 0.015, mid-p = 0.0076.
    assert find_patterns(demo_fleet(), settings=PatternSettings(mid_p=False)) == []
    assert len(find_patterns(demo_fleet(), settings=PatternSettings())) == 1


def healthy_rest(count: int, start: int = 100) -> list[DeviceReport]:
    return [report(f"ok-{i}", lan=str(start + i), public=f"192.0.2.{i}") for i in range(count)]


def group(
    codes: list[tuple[str, ...]], lan: str = "7", public: str = "203.0.113.9"
) -> list[DeviceReport]:
    return [report(f"g-{i:02d}", *c, lan=lan, public=public) for i, c in enumerate(codes)]


VPN = ("vpn.endpoint_blocked",)
DNS = ("dns.upstream_unreachable",)


@pytest.mark.parametrize(
    ("name", "fleet", "expected"),
    [
        ("tiny group never flagged", group([VPN, VPN]) + healthy_rest(20), None),
        ("smallest group flagged", group([VPN, VPN, VPN]) + healthy_rest(8), (3, 3)),
        (
            "everything fails the same way",
            group([VPN] * 3) + [report(f"x-{i}", *VPN, lan=str(50 + i)) for i in range(9)],
            None,
        ),
        ("mixed causes in one group", group([VPN, VPN, DNS, DNS]) + healthy_rest(10), None),
        ("12 of 12 vs a healthy rest", group([VPN] * 12) + healthy_rest(20), (12, 12)),
        ("80% edge: 4 of 5 flagged", group([VPN] * 4 + [()]) + healthy_rest(10), (4, 5)),
        ("80% edge: 3 of 5 not flagged", group([VPN] * 3 + [(), ()]) + healthy_rest(10), None),
        ("whole fleet is the group", group([VPN] * 6), None),
        (
            "cascaded symptoms are not causes",
            group([("time.chronyd_stopped",)] * 3)
            + [report(f"v-{i}", *VPN, lan=str(60 + i)) for i in range(8)],
            (3, 3),
        ),
    ],
)
def test_group_statistics(
    name: str, fleet: list[DeviceReport], expected: tuple[int, int] | None
) -> None:
    findings = find_patterns(fleet)
    if expected is None:
        assert findings == [], name
        return
    assert len(findings) == 1, name
    assert (findings[0].kind, findings[0].value) == ("lan", lan_value("7"))
    assert (findings[0].affected, findings[0].total) == expected


def test_cascade_group_is_blamed_on_time_not_vpn() -> None:
    fleet = group([("time.chronyd_stopped",)] * 3) + healthy_rest(8)
    (finding,) = find_patterns(fleet)
    assert (finding.category, finding.code) == ("time", "time.chronyd_stopped")


def test_twelve_devices_behind_one_address_read_as_the_network_owner_expects() -> None:
    fleet = [report(f"p-{i:02d}", *VPN, public="203.0.113.7", site="depot-3") for i in range(12)]
    (finding,) = find_patterns(fleet + healthy_rest(20))
    assert (finding.kind, finding.value) == ("public_address", "203.0.113.7")
    assert finding.summary == (
        "network 203.0.113.7 (site: depot-3) blocks TCP 443 to cloudlink: 12 of 12 devices"
    )
    assert finding.devices == tuple(f"p-{i:02d}" for i in range(12))


def test_blocked_endpoint_is_named_from_the_evidence() -> None:
    fleet = [report(f"p-{i}", *VPN, public="203.0.113.7", evidence=VPN_EVIDENCE) for i in range(5)]
    (finding,) = find_patterns(fleet + healthy_rest(10))
    assert finding.summary == (
        "network 203.0.113.7 blocks TCP 443 to cloudlink.balena-cloud.com: 5 of 5 devices"
    )
    assert finding.remediation.startswith(
        "Allow outbound TCP 443 to cloudlink.balena-cloud.com on this network's firewall."
    )


@pytest.mark.parametrize(
    ("code", "phrase", "remedy"),
    [
        ("time.ntp_blocked", "blocks NTP (UDP 123)", "ntpServers"),
        ("dns.upstream_unreachable", "breaks DNS (UDP 53)", "UDP and TCP 53"),
        ("dpi.tls_intercepted", "intercepts TLS", "balenaRootCA"),
        ("firewall.registry_blocked", "blocks TCP 443 to balenaCloud", "*.balena-cloud.com"),
        (
            "supervisor.unhealthy",
            "keeps the supervisor from reporting to balenaCloud",
            "not the cause",
        ),
    ],
)
def test_wording_follows_the_category(code: str, phrase: str, remedy: str) -> None:
    fleet = [report(f"s-{i}", code, lan="9", site="quarry") for i in range(4)]
    (finding,) = find_patterns(fleet + healthy_rest(10))
    assert finding.summary == f"LAN {lan_value('9')} (site: quarry) {phrase}: 4 of 4 devices"
    assert remedy in finding.remediation


def test_lan_is_preferred_over_the_public_address_and_site_it_explains() -> None:
    fleet = [
        report(f"d-{i}", *VPN, lan="3", public="203.0.113.7", site="depot-3") for i in range(5)
    ]
    findings = find_patterns(fleet + healthy_rest(10))
    assert [(f.kind, f.value) for f in findings] == [("lan", lan_value("3"))]


def test_two_failing_lans_behind_one_address_are_reported_as_lans() -> None:
    fleet = [report(f"a-{i}", *VPN, lan="3", public="203.0.113.7") for i in range(4)]
    fleet += [report(f"b-{i}", *VPN, lan="4", public="203.0.113.7") for i in range(4)]
    findings = find_patterns(fleet + healthy_rest(12))
    assert [(f.kind, f.value, f.affected) for f in findings] == [
        ("lan", lan_value("3"), 4),
        ("lan", lan_value("4"), 4),
    ]


def test_broader_network_is_kept_when_it_names_devices_the_lan_does_not() -> None:
    fleet = [report(f"a-{i}", *VPN, lan="3", public="203.0.113.7") for i in range(4)]
    fleet += [report(f"c-{i}", *VPN, public="203.0.113.7") for i in range(3)]  # no LAN probe
    findings = find_patterns(fleet + healthy_rest(15))
    assert [(f.kind, f.affected, f.total) for f in findings] == [
        ("public_address", 7, 7),
        ("lan", 4, 4),
    ]


def test_unreachable_devices_are_reported_separately() -> None:
    down = [
        report(f"q-{i}", public="203.0.113.50", site="quarry", reachable=False) for i in range(4)
    ]
    failing = [report(f"f-{i}", *VPN, lan="3", public="203.0.113.7") for i in range(4)]
    devices = {r.uuid: Device(uuid=r.uuid, name=r.name, is_online=False) for r in down}
    findings = find_patterns(down + failing + healthy_rest(10), devices)
    assert [(f.kind, f.unreachable, f.category) for f in findings] == [
        ("lan", False, "vpn"),
        ("public_address", True, "access"),
    ]
    gone = findings[1]
    assert gone.code == "access.network_unreachable"
    assert gone.devices == tuple(f"q-{i}" for i in range(4))
    assert gone.summary == (
        "network 203.0.113.50 (site: quarry): 4 of 4 devices never reachable "
        "(offline in the fleet source: 4)"
    )
    assert "TCP 443" in gone.remediation and "UDP 123" in gone.remediation


def test_fleet_source_places_unreachable_devices_on_their_network() -> None:
    down = [report(f"n-{i}", reachable=False) for i in range(3)]
    devices = {
        r.uuid: Device(uuid=r.uuid, name=r.name, public_address="203.0.113.60", is_online=False)
        for r in down
    }
    assert find_patterns(down + healthy_rest(10)) == []
    (finding,) = find_patterns(down + healthy_rest(10), devices)
    assert (finding.kind, finding.value, finding.unreachable) == (
        "public_address",
        "203.0.113.60",
        True,
    )


def test_authentication_failures_are_not_network_problems() -> None:
    refused = [
        report(f"k-{i}", public="203.0.113.50", reachable=False, error_kind="auth")
        for i in range(4)
    ]
    assert find_patterns(refused + healthy_rest(10)) == []


def test_a_fleet_that_is_all_unreachable_flags_nothing() -> None:
    down = [report(f"u-{i}", public=f"203.0.113.{i % 2}", reachable=False) for i in range(8)]
    assert find_patterns(down) == []


def test_findings_are_ordered_by_affected_devices() -> None:
    fleet = [report(f"a-{i}", *DNS, lan="3") for i in range(3)]
    fleet += [report(f"b-{i}", *VPN, lan="4") for i in range(5)]
    fleet += healthy_rest(15)
    findings = find_patterns(fleet)
    assert [(f.category, f.affected) for f in findings] == [("vpn", 5), ("dns", 3)]
    assert find_patterns(list(reversed(fleet))) == findings


def test_attribute_blames_the_network_only_for_group_members() -> None:
    fleet = group([VPN] * 4 + [()]) + healthy_rest(10) + [report("lone", *DNS, lan="99")]
    findings = find_patterns(fleet)
    attributed = attribute(fleet, findings)
    causes = {r.uuid: r.network_cause for r in attributed}
    assert [r.uuid for r in attributed] == [r.uuid for r in fleet]
    for uuid in ("g-00", "g-01", "g-02", "g-03"):
        assert causes[uuid] == "network issue, not this device: " + findings[0].summary
    assert causes["g-04"] is None  # healthy member of the flagged LAN
    assert causes["lone"] is None
    assert all(a is r for a, r in zip(attributed, fleet, strict=True) if a.network_cause is None)


@pytest.mark.parametrize(
    ("report_keys", "device", "expected"),
    [
        (
            NetworkKeys(
                gateway_ip="192.168.1.1",
                gateway_mac="AA:BB:CC:00:11:22",
                subnet="192.168.1.0/24",
                public_address="203.0.113.7",
            ),
            Device(uuid="u", name="n", site="depot-3", labels=("north", "cold")),
            [
                ("lan", "192.168.1.1/aa:bb:cc:00:11:22"),
                ("public_address", "203.0.113.7"),
                ("site", "depot-3"),
                ("label", "cold"),
                ("label", "north"),
            ],
        ),
        (
            NetworkKeys(gateway_ip="192.168.1.1", subnet="192.168.1.0/24"),
            Device(uuid="u", name="n", public_address="198.51.100.4"),
            [
                ("lan", "192.168.1.0/24 behind 198.51.100.4"),
                ("public_address", "198.51.100.4"),
            ],
        ),
        (
            NetworkKeys(public_address="203.0.113.7", site="depot-3"),
            Device(uuid="u", name="n", public_address="198.51.100.4", site="other"),
            [("public_address", "203.0.113.7"), ("site", "depot-3")],
        ),
        (NetworkKeys(), None, []),
    ],
)
def test_network_keys(
    report_keys: NetworkKeys, device: Device | None, expected: list[tuple[str, str]]
) -> None:
    assert network_keys(DeviceReport("u", "n", True, network=report_keys), device) == expected


@pytest.mark.parametrize(
    "kwargs", [{"min_group": 1}, {"min_share": 0.0}, {"min_share": 1.5}, {"max_p_value": 0}]
)
def test_settings_reject_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="patterns"):
        PatternSettings(**kwargs)
