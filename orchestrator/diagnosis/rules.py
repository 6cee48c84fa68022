"""Turn one device's observations into root-cause findings (pure).

Each detector proposes findings with an ordered list of *explainers*: codes that, when also
found, explain it. ``caused_by`` is the first explainer present, so a wrong clock explains TLS
"not yet valid" on the VPN/API/supervisor/os-config, DNS explains resolve errors, a blocked
port explains the services behind it. Root causes (``caused_by`` None) come first.
Observation keys: the probe modules' docstrings and ``signatures.FACTS``.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.diagnosis.catalog import (
    ACCESS,
    CLOCK_CAUSES,
    DNS_CAUSES,
    DPI,
    DROPPED,
    FINDINGS,
    LOSS_ERROR_PCT,
    LOSS_WARNING_PCT,
    OUTCOME_CAUSES,
    REJECTED,
    TIME_CAUSES,
    WIFI_WEAK_PCT,
)
from orchestrator.diagnosis.rulebase import (
    Candidate,
    Facts,
    make_finding,
    outcome_from_logs,
    resolve_causes,
    text_causes,
)
from orchestrator.frozen import evolve
from orchestrator.models import Finding, Observation
from orchestrator.probes.dns import CONTROL_SERVER

SKEW_S = 300.0
"""Beyond this the clock breaks TLS with fresh certificates and is called skewed."""
DRIFT_S = 10.0
"""Beyond this (and up to SKEW_S) the clock is drifting."""
_UNTRUSTED_CODES = {2, 19, 20, 21}
_DATE_CODES = {9, 10}


def _time(f: Facts) -> list[Candidate]:
    offset = f.value("time.offset_s")
    uncertainty = f.value("time.offset_uncertainty_s", 0.0) or 0.0
    if offset is None:
        offset = f.value("time.http_date_offset_s")
        uncertainty = 2.0
    found: list[Candidate] = []
    skewed = drifting = False
    evidence = f.evidence("time.offset_s", "time.http_date_offset_s", "time.tracking_offset_s")
    if offset is not None:
        error = abs(offset) - uncertainty
        skewed, drifting = error > SKEW_S, DRIFT_S < error <= SKEW_S
        direction = "ahead of" if offset > 0 else "behind"
        days = f" ({abs(offset) / 86400:.0f} days)" if abs(offset) >= 86400 else ""
        summary = f"the device clock is {abs(offset):.0f} s{days} {direction} real time"
    else:
        wrong = f.value("log.chrony.clock_wrong")
        dated = f.log_evidence("tls_not_yet_valid") + f.log_evidence("tls_expired")
        skewed = bool(dated) or (wrong is not None and abs(wrong) > SKEW_S)
        evidence = f.evidence("log.chrony.clock_wrong") + dated
        summary = None
        if wrong is not None and abs(wrong) > SKEW_S:
            summary = f"chronyd found the clock wrong by {abs(wrong):.0f} s ({abs(wrong) / 86400:.0f} days)"
    stopped = f.value("time.chronyd_active") is False or f.value("time.chronyd_reachable") is False
    bad_clock = skewed or drifting
    if stopped:
        found.append(
            Candidate(
                make_finding(
                    "time.chronyd_stopped",
                    f.evidence("time.chronyd_active", "time.chronyd_reachable"),
                    severity=None if bad_clock else "warning",
                )
            )
        )
    sources, reachable = f.value("time.sources_count"), f.value("time.sources_reachable")
    if sources is None and reachable is None:
        unreachable = bool(
            f.log_evidence("no_selectable_sources") or f.log_evidence("no_online_sources")
        )
        ntp_evidence = f.log_evidence("no_selectable_sources") + f.log_evidence("no_online_sources")
    else:
        unreachable = not stopped and (sources == 0 or reachable == 0)
        ntp_evidence = f.evidence("time.sources_reachable", "time.leap_status")
    if unreachable and not stopped:
        found.append(
            Candidate(
                make_finding(
                    "time.ntp_unreachable", ntp_evidence, severity=None if bad_clock else "warning"
                ),
                DNS_CAUSES,
            )
        )
    if skewed:
        found.append(Candidate(make_finding("time.clock_skewed", evidence, summary), CLOCK_CAUSES))
    elif drifting:
        found.append(Candidate(make_finding("time.rtc_drift", evidence, summary), CLOCK_CAUSES))
    return found


def _dns(f: Facts) -> list[Candidate]:
    found: list[Candidate] = []
    resolves = f.value("dns.resolves_api")
    log_failures = f.log_evidence("resolve_failure") if resolves is None else ()
    failing = resolves is False or bool(log_failures)
    if f.value("dns.dnsmasq_active") is False:
        found.append(Candidate(make_finding("dns.dnsmasq_down", f.evidence("dns.dnsmasq_active"))))
    if f.value("dns.resolv_file_present") is False or f.all("log.dns.resolv_missing"):
        evidence = f.evidence("dns.resolv_file_present", "log.dns.resolv_missing", "dns.upstreams")
        found.append(
            Candidate(
                make_finding(
                    "dns.resolver_file_missing",
                    evidence,
                    severity=None if failing or resolves is None else "warning",
                )
            )
        )
    answers: dict[str, str] = f.value("dns.upstream_answers") or {}
    control = f.value("dns.control_server") or CONTROL_SERVER
    dead = [ip for ip, result in answers.items() if result != "ok" and ip != control]
    evidence = f.evidence("dns.upstream_answers", "dns.config_servers")
    if answers and all(result in ("timeout", "refused") for result in answers.values()):
        found.append(Candidate(make_finding("dns.port_blocked", evidence)))
    elif dead:
        summary = f"DNS server {', '.join(dead)} does not answer"
        found.append(
            Candidate(
                make_finding(
                    "dns.upstream_dead", evidence, summary, severity=None if failing else "warning"
                )
            )
        )
    elif not answers and f.all("log.dns.nameservers") and log_failures:
        servers = ", ".join(f.value("log.dns.nameservers"))
        found.append(
            Candidate(
                make_finding(
                    "dns.upstream_dead",
                    f.evidence("log.dns.nameservers") + log_failures[:3],
                    f"names do not resolve through dnsmasq's upstream {servers}",
                )
            )
        )
    if failing and not found:
        evidence = f.evidence("dns.resolves_api", "dns.resolves_ntp") + log_failures
        found.append(Candidate(make_finding("dns.resolution_failed", evidence)))
    return found


def _service(
    code_prefix: str, outcome: str | None, evidence: tuple[str, ...], bad_http: bool = False
) -> list[Candidate]:
    if outcome is None or (outcome == "http" and not bad_http):
        return []
    tls = outcome.startswith("tls_") and code_prefix == "api"
    code = f"{code_prefix}.{'tls_failed' if tls else 'unreachable'}"
    return [Candidate(make_finding(code, evidence), OUTCOME_CAUSES.get(outcome, ()))]


def _api(f: Facts) -> list[Candidate]:
    outcome = f.value("api.outcome")
    if outcome is not None:
        bad = outcome == "http" and (
            f.value("api.http_status") != 200 or f.value("api.body_ok") is False
        )
        return _service("api", outcome, f.evidence("api.outcome"), bad)
    outcome, lines = outcome_from_logs(f, ("curl", "text"))
    found = _service("api", outcome, lines)
    if outcome == "connect_timeout":
        found.append(Candidate(make_finding(DROPPED, lines)))
    elif outcome == "refused":
        found.append(Candidate(make_finding(REJECTED, lines)))
    return found


def _registry(f: Facts) -> list[Candidate]:
    outcome = f.value("registry.outcome")
    bad = outcome == "http" and f.value("registry.http_status") not in (200, 401)
    return _service("registry", outcome, f.evidence("registry.outcome"), bad)


def _firewall(f: Facts) -> list[Candidate]:
    groups: dict[str, list[str]] = {
        DROPPED: [],
        REJECTED: [],
        "firewall.customer_endpoint_blocked": [],
    }
    for obs in f.all("endpoint.tcp"):
        outcome, role = obs.value["outcome"], obs.value["role"]
        if outcome not in ("connect_timeout", "timeout", "refused", "no_route"):
            continue
        code = (
            "firewall.customer_endpoint_blocked"
            if role == "customer"
            else (DROPPED if outcome in ("connect_timeout", "timeout") else REJECTED)
        )
        groups[code].extend(obs.evidence)
    found = []
    for code, lines in groups.items():
        if lines:
            targets = [line.split(" ")[1] for line in lines if line.startswith("TCP ")]
            summary = f"{FINDINGS[code].summary}: {', '.join(targets)}"
            found.append(Candidate(make_finding(code, lines, summary)))
    return found


def _dpi(f: Facts, clock_bad: bool) -> list[Candidate]:
    foreign = f.value("tls.api_chain_foreign")
    verify = f.value("tls.api_verify_code")
    if foreign is None and f.all("log.openssl.issuer"):
        code = f.value("log.openssl.verify_error")
        foreign = code in _UNTRUSTED_CODES
        verify = code
    if not foreign or clock_bad or verify in _DATE_CODES:
        return []
    evidence = f.evidence(
        "tls.api_chain_foreign",
        "log.openssl.issuer",
        "log.openssl.verify_error",
        "tls.balena_root_ca",
    )
    if verify == 0:
        return [Candidate(make_finding("dpi.tls_intercepted_trusted", evidence))]
    return [Candidate(make_finding(DPI, evidence))]


def _vpn(f: Facts) -> list[Candidate]:
    unit, marker = f.value("vpn.openvpn_active"), f.value("vpn.status_active")
    if marker is True or (marker is None and f.all("log.vpn.connected") and unit is not False):
        return []
    found: list[Candidate] = []
    outcome, lines = outcome_from_logs(f, ("vpn",))
    cloudlink = f.value("vpn.cloudlink_outcome")
    if cloudlink in ("connect_timeout", "refused", "no_route", "timeout"):
        causes = OUTCOME_CAUSES[cloudlink]
        found.append(
            Candidate(
                make_finding("vpn.endpoint_blocked", f.evidence("vpn.cloudlink_outcome")), causes
            )
        )
    elif outcome in ("connect_timeout", "refused"):
        found.append(
            Candidate(make_finding("vpn.endpoint_blocked", lines), OUTCOME_CAUSES[outcome])
        )
    if outcome is not None and outcome.startswith("tls_"):
        found.append(Candidate(make_finding("vpn.tls_failed", lines), OUTCOME_CAUSES[outcome]))
    elif cloudlink is not None and cloudlink.startswith("tls_"):
        found.append(
            Candidate(
                make_finding("vpn.tls_failed", f.evidence("vpn.cloudlink_outcome")),
                OUTCOME_CAUSES[cloudlink],
            )
        )
    if f.all("log.vpn.middlebox"):
        found.append(
            Candidate(make_finding("vpn.middlebox", f.evidence("log.vpn.middlebox")), (DPI,))
        )
    if f.all("log.vpn.auth_failed"):
        found.append(Candidate(make_finding("vpn.auth_failed", f.evidence("log.vpn.auth_failed"))))
    down_evidence = f.evidence("vpn.openvpn_active", "vpn.status_active")
    if unit is None and marker is None:
        down_evidence = f.evidence("log.supervisor.vpn_not_active")
    if down_evidence:
        explainers = (
            ()
            if unit is False
            else (
                "vpn.auth_failed",
                "vpn.tls_failed",
                "vpn.endpoint_blocked",
                "vpn.middlebox",
                DROPPED,
                REJECTED,
                *DNS_CAUSES,
                *TIME_CAUSES,
                DPI,
            )
        )
        found.append(Candidate(make_finding("vpn.down", down_evidence), explainers))
    return found


def _supervisor(f: Facts) -> list[Candidate]:
    found: list[Candidate] = []
    report = f.value("log.supervisor.state_report_failure")
    if report is not None:
        causes = text_causes(str(report)) + ("api.unreachable", "api.tls_failed")
        evidence = f.evidence("log.supervisor.state_report_failure")
        found.append(Candidate(make_finding("supervisor.state_report_failing", evidence), causes))
    status, active = f.value("supervisor.healthy_status"), f.value("supervisor.active")
    reasons = []
    if status is not None and status != 200:
        reasons.append(f"GET /v1/healthy returned {status}")
    elif active is False:
        reasons.append("balena-supervisor.service is not active")
    elif f.value("supervisor.healthy_outcome") not in (None, "http"):
        reasons.append("the supervisor API on 48484 does not answer")
    elif status is None and (
        f.all("log.supervisor.healthy_500") or f.all("log.supervisor.healthcheck_failure")
    ):
        reasons.append("the supervisor reports failing health checks")
    if reasons:
        evidence = f.evidence(
            "supervisor.healthy_status",
            "supervisor.active",
            "log.supervisor.healthy_500",
            "log.supervisor.healthcheck_failure",
        )
        summary = f"the supervisor is unhealthy: {reasons[0]}"
        found.append(
            Candidate(
                make_finding("supervisor.unhealthy", evidence, summary),
                ("supervisor.state_report_failing",) if report is not None else (),
            )
        )
    return found


def _os_config(f: Facts) -> list[Candidate]:
    error = f.value("log.os_config.fetch_failed")
    if error is None:
        return []
    evidence = f.evidence("log.os_config.fetch_failed")
    return [
        Candidate(
            make_finding("os_config.fetch_failed", evidence),
            text_causes(str(error)) + ("api.unreachable", "api.tls_failed"),
        )
    ]


_IPV6_FAILURES = ("connect_timeout", "timeout", "no_route", "refused", "reset")
"""curl -6 outcomes that mean IPv6 transport fails (not ``resolve``: the name may lack AAAA)."""


def _link(f: Facts) -> list[Candidate]:
    """Weak Wi-Fi, loss to the gateway, and an IPv6 route that does not carry traffic."""
    found: list[Candidate] = []
    signal = f.value("link.wifi_signal")
    if signal is not None and signal < WIFI_WEAK_PCT:
        summary = f"the Wi-Fi signal is weak ({signal} %, below {WIFI_WEAK_PCT} %)"
        found.append(
            Candidate(make_finding("link.wifi_weak", f.evidence("link.wifi_signal"), summary))
        )
    loss = f.value("link.loss_pct")
    # 100 % is left alone: a gateway that ignores ICMP looks the same as a dead link.
    if loss is not None and LOSS_WARNING_PCT <= loss < 100:
        severity = "error" if loss >= LOSS_ERROR_PCT else "warning"
        summary = f"{loss:g} % of packets to the default gateway {f.value('link.gateway')} are lost"
        evidence = f.evidence("link.loss_pct", "link.wifi_signal")
        found.append(
            Candidate(
                make_finding("link.packet_loss", evidence, summary, severity), ("link.wifi_weak",)
            )
        )
    v4, v6 = f.value("link.api_v4_outcome"), f.value("link.api_v6_outcome")
    if f.value("link.ipv6_route") is True and v4 == "http" and v6 in _IPV6_FAILURES:
        evidence = f.evidence("link.ipv6_route", "link.api_v6_outcome", "link.api_v4_outcome")
        found.append(Candidate(make_finding("link.ipv6_broken", evidence)))
    return found


def diagnose(observations: Sequence[Observation]) -> list[Finding]:
    """Findings for one device: root causes first, explained findings carry ``caused_by``."""
    f = Facts(observations)
    candidates = _time(f)
    clock_bad = any(c.finding.code in TIME_CAUSES for c in candidates)
    candidates += _dns(f) + _firewall(f) + _dpi(f, clock_bad) + _api(f) + _vpn(f)
    candidates += _supervisor(f) + _registry(f) + _os_config(f) + _link(f)
    unique: dict[str, Candidate] = {}
    for candidate in candidates:
        code = candidate.finding.code
        if code in unique:
            merged = unique[code].finding.evidence + candidate.finding.evidence
            candidate = evolve(
                unique[code],
                finding=evolve(unique[code].finding, evidence=tuple(dict.fromkeys(merged))[:12]),
            )
        unique[code] = candidate
    return resolve_causes(list(unique.values()))


def access_finding(error_kind: str, message: str) -> Finding:
    """The finding for a device that could not be reached at all (category ``access``)."""
    kind = error_kind if error_kind in ACCESS else "error"
    summary, remediation = ACCESS[kind]
    return Finding(
        code=f"access.{kind}",
        category="access",
        severity="error",
        summary=summary,
        evidence=(message,) if message else (),
        remediation=remediation,
    )
