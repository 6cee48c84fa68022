"""Root-cause rules on whole devices: real tool output and seed journals go through the real
probe parsers, then `diagnose`. Each scenario asserts the exact root causes and the cascade."""

import dataclasses
import json
from pathlib import Path

import pytest

from orchestrator.diagnosis.rulebase import _caused_by
from orchestrator.diagnosis.rules import access_finding, diagnose
from orchestrator.models import Finding, StepOutput
from orchestrator.probes.base import Endpoints, ProbeContext
from orchestrator.probes.registry import PROBES, parse_all

FIX = Path(__file__).resolve().parents[1] / "fixtures"
CODES = json.loads((FIX / "real" / "exit_codes.json").read_text())
NOW = 1795632616  # the Date header of the captured connectivity check
Y2017 = 1490270400
CTX = ProbeContext(endpoints=Endpoints(customer=("mqtt.example.com:8883",)), sent_at=NOW - 0.5)


def real(name: str) -> tuple[str, int | None]:
    return (FIX / "real" / f"{name}.txt").read_text(), CODES.get(name)


def seed(name: str) -> tuple[str, int]:
    return (FIX / "seed" / f"{name}.txt").read_text(), 0


def text(out: str, code: int = 0) -> tuple[str, int]:
    return out, code


def loop(*answers: tuple[str, str]) -> tuple[str, int]:
    body = "".join(f"== server {ip}\n{real(fx)[0]}== rc {real(fx)[1]}\n" for ip, fx in answers)
    return body, 0


def seed_line(name: str, needle: str) -> str:
    return next(line for line in seed(name)[0].splitlines() if needle in line) + "\n"


HEALTHY: dict[str, tuple[str, int | None]] = {
    "time.date": text(f"{NOW}\n"),
    "time.http_date": text(f"{NOW}\n" + real("curl_connectivity_check_204")[0]),
    "time.chronyd": text("active\n"),
    "time.tracking": real("chronyc_tracking_synced"),
    "time.sources": real("chronyc_sources_synced"),
    "time.journal": text(real("chronyd_synced_log")[0]),
    "dns.dnsmasq": text("active\n"),
    "dns.resolv_file": text("nameserver 198.18.0.1\n"),
    "dns.servers_file": text("server=198.18.0.1\n"),
    "dns.config": text("", 1),
    "dns.local_api": real("nslookup_busybox_ok"),
    "dns.local_ntp": real("nslookup_busybox_ok"),
    "dns.upstreams": loop(
        ("198.18.0.1", "nslookup_busybox_ok"), ("8.8.8.8", "nslookup_busybox_ok")
    ),
    "dns.journal": text(real("dnsmasq_resolv_missing_log")[0]),
    "api.ping": real("curl_ping_ok"),
    "vpn.openvpn": text("active\n"),
    "vpn.status": text("active\n"),
    "vpn.journal": seed("6.3_openvpn_healthy"),
    "vpn.cloudlink": real("curl_registry_401"),
    "vpn.os_config_journal": seed("6.3_os_config"),
    "endpoints.api": real("curl_registry_401"),
    "endpoints.cloudlink": real("curl_registry_401"),
    "endpoints.registry": real("curl_registry_401"),
    "endpoints.delta": real("curl_registry_401"),
    "endpoints.customer1": real("curl_telnet_open"),
    "tls.api_chain": real("openssl_showcerts_good"),
    "tls.root_ca": text("0\n", 1),
    "supervisor.unit": text("active\n"),
    "supervisor.ping": real("curl_supervisor_ping_ok"),
    "supervisor.healthy": real("curl_supervisor_ping_ok"),
    "supervisor.journal": seed("6.1_supervisor_recovered"),
    "registry.v2": real("curl_registry_401"),
    "net.route": real("ip_route_default"),
    "net.addr": real("ip_addr"),
    "net.neigh": real("ip_neigh"),
}

CLOCK_2017 = {
    "time.date": text(f"{Y2017}\n"),
    "time.http_date": text(f"{Y2017}\n" + real("curl_connectivity_check_204")[0]),
    "api.ping": real("curl_exit60_not_yet_valid"),
    "vpn.status": text("inactive\n"),
    "vpn.journal": seed("6.1_openvpn_not_yet_valid"),
    "vpn.cloudlink": real("curl_exit60_not_yet_valid"),
    "tls.api_chain": real("openssl_showcerts_not_yet_valid"),
    "supervisor.journal": seed("6.1_supervisor_not_yet_valid"),
    "registry.v2": real("curl_exit60_not_yet_valid"),
}
CHRONYD_STOPPED = {
    "time.chronyd": text("inactive\n", 3),
    "time.tracking": real("chronyc_tracking_stopped"),
    "time.sources": real("chronyc_tracking_stopped"),
}
NTP_BLOCKED = {
    "time.tracking": real("chronyc_tracking_dead_source"),
    "time.sources": real("chronyc_sources_dead_source"),
}
RESOLVE_FAILS = {
    "dns.local_api": real("nslookup_busybox_dead_upstream"),
    "dns.local_ntp": real("nslookup_busybox_dead_upstream"),
    "api.ping": real("curl_exit6_resolver_refused"),
    "vpn.status": text("inactive\n"),
    "vpn.cloudlink": real("curl_exit6_resolver_refused"),
    **{
        f"endpoints.{r}": real("curl_exit6_resolver_refused")
        for r in ("api", "cloudlink", "registry", "delta")
    },
    "supervisor.journal": seed("6.2_supervisor_eai_again"),
    "registry.v2": real("curl_exit6_resolver_refused"),
    "tls.api_chain": text("", 1),
}
VPN_DOWN_BY_SUPERVISOR = seed_line("6.1_supervisor_not_yet_valid", "VPN connection is not active")

SCENARIOS = {
    "healthy": ({}, set(), {}),
    "chronyd stopped, clock in 2017 (seed 6.1)": (
        {**CLOCK_2017, **CHRONYD_STOPPED},
        {"time.chronyd_stopped"},
        {
            "time.clock_skewed": "time.chronyd_stopped",
            "api.tls_failed": "time.clock_skewed",
            "vpn.tls_failed": "time.clock_skewed",
            "vpn.down": "vpn.tls_failed",
            "supervisor.state_report_failing": "time.clock_skewed",
            "registry.unreachable": "time.clock_skewed",
        },
    ),
    "NTP blocked, clock in 2017": (
        {**CLOCK_2017, **NTP_BLOCKED},
        {"time.ntp_unreachable"},
        {"time.clock_skewed": "time.ntp_unreachable", "api.tls_failed": "time.clock_skewed"},
    ),
    "NTP blocked, RTC still right": (NTP_BLOCKED, {"time.ntp_unreachable"}, {}),
    "NTP blocked, RTC drifting": (
        {**NTP_BLOCKED, "time.date": text(f"{NOW + 120}\n"), "time.http_date": text("", 28)},
        {"time.ntp_unreachable"},
        {"time.rtc_drift": "time.ntp_unreachable"},
    ),
    "clock set back, chronyd fine": (
        {**CLOCK_2017},
        {"time.clock_skewed"},
        {"vpn.tls_failed": "time.clock_skewed"},
    ),
    "resolver file missing and dnsServers dead (seed 6.2)": (
        {
            **RESOLVE_FAILS,
            "dns.resolv_file": text("cat: /etc/resolv.dnsmasq: No such file or directory\n", 1),
            "dns.servers_file": text("server=1.2.3.4\n"),
            "dns.config": text('"dnsServers":"1.2.3.4"\n'),
            "dns.upstreams": loop(
                ("1.2.3.4", "nslookup_busybox_sink"), ("8.8.8.8", "nslookup_busybox_ok")
            ),
        },
        {"dns.resolver_file_missing", "dns.upstream_dead"},
        {
            "api.unreachable": "dns.upstream_dead",
            "vpn.down": "dns.upstream_dead",
            "supervisor.state_report_failing": "dns.upstream_dead",
            "registry.unreachable": "dns.upstream_dead",
        },
    ),
    "port 53 blocked, curl says exit 28 resolving timed out": (
        {
            **RESOLVE_FAILS,
            "api.ping": real("curl_exit28_resolving_timeout"),
            "dns.upstreams": loop(
                ("198.18.0.1", "nslookup_busybox_sink"), ("8.8.8.8", "nslookup_busybox_sink")
            ),
        },
        {"dns.port_blocked"},
        {"api.unreachable": "dns.port_blocked"},
    ),
    "dnsmasq down": (
        {
            **RESOLVE_FAILS,
            "dns.dnsmasq": text("failed\n", 3),
            "dns.local_api": real("nslookup_busybox_closed"),
        },
        {"dns.dnsmasq_down"},
        {"api.unreachable": "dns.dnsmasq_down"},
    ),
    "cloudlink 443 dropped": (
        {
            "endpoints.cloudlink": real("curl_exit28_connect_dropped"),
            "vpn.cloudlink": real("curl_exit28_connect_dropped"),
            "vpn.status": text("inactive\n"),
            "supervisor.journal": text(VPN_DOWN_BY_SUPERVISOR),
        },
        {"firewall.tcp_dropped"},
        {"vpn.endpoint_blocked": "firewall.tcp_dropped", "vpn.down": "vpn.endpoint_blocked"},
    ),
    "443 rejected everywhere": (
        {
            **{
                f"endpoints.{r}": real("curl_exit7_reject_reset")
                for r in ("api", "cloudlink", "registry", "delta")
            },
            "api.ping": real("curl_exit7_reject_reset"),
            "vpn.cloudlink": real("curl_exit7_reject_reset"),
            "vpn.status": text("inactive\n"),
            "registry.v2": real("curl_exit7_reject_reset"),
        },
        {"firewall.tcp_rejected"},
        {
            "api.unreachable": "firewall.tcp_rejected",
            "registry.unreachable": "firewall.tcp_rejected",
            "vpn.down": "vpn.endpoint_blocked",
        },
    ),
    "customer endpoint blocked": (
        {"endpoints.customer1": real("curl_telnet_dropped")},
        {"firewall.customer_endpoint_blocked"},
        {},
    ),
    "DPI re-signs the API": (
        {
            "tls.api_chain": real("openssl_showcerts_dpi"),
            "api.ping": real("curl_exit60_dpi"),
            "registry.v2": real("curl_exit60_dpi"),
        },
        {"dpi.tls_intercepted"},
        {"api.tls_failed": "dpi.tls_intercepted", "registry.unreachable": "dpi.tls_intercepted"},
    ),
    "foreign chain but the clock is wrong: time, not DPI": (
        {**CLOCK_2017, **CHRONYD_STOPPED, "tls.api_chain": real("openssl_showcerts_dpi")},
        {"time.chronyd_stopped"},
        {"time.clock_skewed": "time.chronyd_stopped"},
    ),
    "supervisor answers 500": (
        {"supervisor.healthy": real("curl_supervisor_healthy_500")},
        {"supervisor.unhealthy"},
        {},
    ),
}


def run(overrides):
    steps = {}
    for name, (out, code) in {**HEALTHY, **overrides}.items():
        steps[name] = StepOutput(name, out, exit_code=code, received_at=NOW + 0.5)
    return diagnose(parse_all(PROBES, steps, CTX))


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenario_root_causes_and_cascade(scenario):
    overrides, roots, causes = SCENARIOS[scenario]
    findings = run(overrides)
    problems = [f for f in findings if f.severity != "info"]
    assert {f.code for f in problems if f.caused_by is None} == roots
    by_code = {f.code: f for f in findings}
    for code, cause in causes.items():
        assert by_code[code].caused_by == cause, code
    for finding in findings:
        assert finding.evidence, finding.code
        assert finding.remediation and finding.category == finding.code.split(".")[0]
    first_explained = next((i for i, f in enumerate(findings) if f.caused_by), len(findings))
    assert all(f.caused_by is None for f in findings[:first_explained])
    assert all(f.caused_by for f in findings[first_explained:])


def test_healthy_device_has_no_findings():
    assert run({}) == []


def test_rtc_still_right_is_only_a_warning():
    findings = run(NTP_BLOCKED)
    assert [(f.code, f.severity) for f in findings] == [("time.ntp_unreachable", "warning")]


def test_access_finding():
    finding = access_finding("auth", "Permission denied (publickey)")
    assert (finding.code, finding.category, finding.caused_by) == ("access.auth", "access", None)
    assert finding.evidence == ("Permission denied (publickey)",)
    assert access_finding("weird", "x").code == "access.error"


def test_setting_a_cause_keeps_every_other_field_of_the_finding():
    values = {field.name: f"{field.name}-value" for field in dataclasses.fields(Finding)}
    values["evidence"] = ("line one", "line two")
    finding = Finding(**values)

    assert _caused_by(finding, "time.clock_skewed") == dataclasses.replace(
        finding, caused_by="time.clock_skewed"
    )
    assert _caused_by(finding, None) == dataclasses.replace(finding, caused_by=None)
    assert _caused_by(finding, finding.caused_by) is finding
