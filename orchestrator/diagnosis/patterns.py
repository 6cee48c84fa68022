"""Network-wide patterns: when most devices on one network fail the same way, blame the network.

The seed's advice, made automatic: "If every balena device on the network is failing to connect to
the VPN, this usually indicates the network is being overly restrictive", and devices on one
network that never came online point to its firewall. Devices are grouped by network keys (LAN,
public address, site, label); a group is flagged when it is big enough, most of it shares one
root-cause category, and an exact test says its rate is clearly above the rest of the fleet.
Unreachable devices are grouped the same way and reported separately. Pure code.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.diagnosis.stats import fisher_greater, fisher_mid_p_greater
from orchestrator.frozen import evolve, frozen_record
from orchestrator.models import Device, DeviceReport, Finding, NetworkFinding
from orchestrator.vocabulary import CATEGORIES

KIND_ORDER: tuple[str, ...] = ("lan", "public_address", "site", "label")
"""Network key kinds, most specific first."""

UNREACHABLE_CODE = "access.network_unreachable"

NOT_NETWORK_ERRORS = frozenset({"auth", "hostkey"})
"""Transport error kinds that prove the device's sshd answered: no evidence about its network."""


@dataclass(frozen=True)
class PatternSettings:
    """Thresholds for flagging a network (config section `[patterns]`)."""

    min_group: int = 3
    """Smallest group (devices judged) that can be flagged."""
    min_share: float = 0.8
    """Share of the group's devices that must have the problem."""
    max_p_value: float = 0.01
    """The group's rate must beat the rest of the fleet's at this one-sided significance."""
    mid_p: bool = True
    """Use Lancaster's mid-p Fisher test (the plain one cannot flag a 4-device site in a demo-sized
    fleet where one other device shares the problem: 4/4 vs 1/7 gives p = 0.015)."""

    def __post_init__(self) -> None:
        if self.min_group < 2:
            raise ValueError(f"patterns min_group must be >= 2, got {self.min_group}")
        if not 0 < self.min_share <= 1:
            raise ValueError(f"patterns min_share must be in (0, 1], got {self.min_share}")
        if not 0 < self.max_p_value <= 1:
            raise ValueError(f"patterns max_p_value must be in (0, 1], got {self.max_p_value}")


def network_keys(report: DeviceReport, device: Device | None) -> list[tuple[str, str]]:
    """The (kind, value) networks a device is on, most specific first.

    The report's own keys (from probes) win; the fleet source fills public address, site and
    labels it lacks. The LAN is the default gateway's IP and MAC; without a MAC it is the subnet
    (or gateway IP), qualified by the public address when known, because private ranges such as
    192.168.1.0/24 repeat on unrelated networks.
    """
    net = report.network
    public = net.public_address or (device.public_address if device else None)
    site = net.site or (device.site if device else None)
    labels = net.labels or (device.labels if device else ())
    keys: list[tuple[str, str]] = []
    mac = (net.gateway_mac or "").strip().lower()
    if mac and mac != "00:00:00:00:00:00":
        keys.append(("lan", f"{net.gateway_ip}/{mac}" if net.gateway_ip else mac))
    elif net.subnet or net.gateway_ip:
        lan = net.subnet or f"gateway {net.gateway_ip}"
        keys.append(("lan", f"{lan} behind {public}" if public else lan))
    if public:
        keys.append(("public_address", public))
    if site:
        keys.append(("site", site))
    keys.extend(("label", label) for label in sorted(set(labels)))
    return keys


@frozen_record
class _Member:
    """One device as the pattern finder sees it."""

    uuid: str
    reachable: bool
    network_down: bool
    """Not reached for a reason that may be its network (not an auth or host-key refusal)."""
    offline_in_fleet: bool
    site: str | None
    keys: tuple[tuple[str, str], ...]
    causes: Mapping[str, tuple[Finding, ...]]
    """Root-cause findings (caused_by None, above info) by category."""


def _member(report: DeviceReport, device: Device | None) -> _Member:
    causes: dict[str, list[Finding]] = {}
    for finding in report.findings:
        if finding.caused_by is None and finding.severity != "info":
            causes.setdefault(finding.category, []).append(finding)
    keys = network_keys(report, device)
    return _Member(
        uuid=report.uuid,
        reachable=report.reachable,
        network_down=not report.reachable and report.error_kind not in NOT_NETWORK_ERRORS,
        offline_in_fleet=device is not None and device.is_online is False,
        site=next((value for kind, value in keys if kind == "site"), None),
        keys=tuple(keys),
        causes={category: tuple(found) for category, found in causes.items()},
    )


def find_patterns(
    reports: Sequence[DeviceReport],
    devices: Mapping[str, Device] | None = None,
    settings: PatternSettings = PatternSettings(),  # noqa: B008 - frozen, safe to share
) -> list[NetworkFinding]:
    """Networks whose devices fail together, most affected first.

    Failed checks and unreachable devices are tested separately; of findings that flag the same
    devices for the same reason only the most specific network is kept.
    """
    members = [_member(r, (devices or {}).get(r.uuid)) for r in reports]
    groups: dict[tuple[str, str], list[_Member]] = {}
    for member in members:
        for key in member.keys:
            groups.setdefault(key, []).append(member)
    fleet = _Fleet.of(members)
    candidates: list[NetworkFinding] = []
    for key, group in groups.items():
        for check in (_failed_checks, _unreachable):
            finding = check(key, group, fleet, settings)
            if finding is not None:
                candidates.append(finding)
    kept = _most_specific(candidates)
    return sorted(kept, key=_display_order)


def attribute(
    reports: Sequence[DeviceReport], findings: Sequence[NetworkFinding]
) -> list[DeviceReport]:
    """The reports, with `network_cause` set on every device a network finding names."""
    statements: dict[str, list[str]] = {}
    for finding in sorted(findings, key=_specificity):
        for uuid in finding.devices:
            known = statements.setdefault(uuid, [])
            if finding.summary not in known:
                known.append(finding.summary)
    return [
        evolve(r, network_cause="network issue, not this device: " + "; ".join(statements[r.uuid]))
        if r.uuid in statements
        else r
        for r in reports
    ]


@dataclass(frozen=True)
class _Fleet:
    """Fleet-wide totals the groups are compared with."""

    judged: int
    with_category: Mapping[str, int]
    access_judged: int
    down: int

    @staticmethod
    def of(members: Sequence[_Member]) -> _Fleet:
        reached = [m for m in members if m.reachable]
        access = [m for m in members if m.reachable or m.network_down]
        return _Fleet(
            judged=len(reached),
            with_category=Counter(c for m in reached for c in m.causes),
            access_judged=len(access),
            down=sum(1 for m in access if m.network_down),
        )


def _p_value(
    in_group: int, group: int, in_fleet: int, fleet: int, settings: PatternSettings
) -> float:
    """One-sided exact p-value of `in_group` of `group` vs the rest of a fleet."""
    rest_with = in_fleet - in_group
    rest_without = (fleet - group) - rest_with
    test = fisher_mid_p_greater if settings.mid_p else fisher_greater
    return test(in_group, group - in_group, rest_with, rest_without)


def _failed_checks(
    key: tuple[str, str], group: list[_Member], fleet: _Fleet, settings: PatternSettings
) -> NetworkFinding | None:
    checked = [m for m in group if m.reachable]
    if len(checked) < settings.min_group:
        return None
    counts = Counter(c for m in checked for c in m.causes)
    if not counts:
        return None
    category = min(counts, key=lambda c: (-counts[c], _category_rank(c), c))
    affected = [m for m in checked if category in m.causes]
    if len(affected) / len(checked) < settings.min_share:
        return None
    p = _p_value(len(affected), len(checked), fleet.with_category[category], fleet.judged, settings)
    if p > settings.max_p_value:
        return None
    code = _most_common(Counter(f.code for m in affected for f in _distinct(m.causes[category])))
    endpoint = _shared_endpoint(affected, category)
    where = _where(key, checked)
    kind, value = key
    return NetworkFinding(
        kind=kind,
        value=value,
        category=category,
        code=code,
        devices=tuple(sorted(m.uuid for m in affected)),
        affected=len(affected),
        total=len(checked),
        summary=f"{where} {_problem(category, code, endpoint)}: "
        f"{len(affected)} of {len(checked)} devices",
        remediation=_remediation(category, endpoint),
    )


def _unreachable(
    key: tuple[str, str], group: list[_Member], fleet: _Fleet, settings: PatternSettings
) -> NetworkFinding | None:
    judged = [m for m in group if m.reachable or m.network_down]
    if len(judged) < settings.min_group:
        return None
    down = [m for m in judged if m.network_down]
    if not down or len(down) / len(judged) < settings.min_share:
        return None
    if (
        _p_value(len(down), len(judged), fleet.down, fleet.access_judged, settings)
        > settings.max_p_value
    ):
        return None
    offline = sum(1 for m in down if m.offline_in_fleet)
    note = f" (offline in the fleet source: {offline})" if offline else ""
    kind, value = key
    return NetworkFinding(
        kind=kind,
        value=value,
        category="access",
        code=UNREACHABLE_CODE,
        devices=tuple(sorted(m.uuid for m in down)),
        affected=len(down),
        total=len(judged),
        summary=f"{_where(key, judged)}: {len(down)} of {len(judged)} devices never reachable{note}",
        remediation=_REMEDIATIONS["access"],
        unreachable=True,
    )


def _distinct(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per code, so a device counts once per code."""
    return list({f.code: f for f in findings}.values())


def _most_common(counts: Counter[str]) -> str:
    """The most frequent item, ties broken by name."""
    return min(counts, key=lambda item: (-counts[item], item))


def _category_rank(category: str) -> int:
    return CATEGORIES.index(category) if category in CATEGORIES else len(CATEGORIES)


def _specificity(finding: NetworkFinding) -> tuple[int, int, str]:
    return (KIND_ORDER.index(finding.kind), finding.total, finding.value)


def _display_order(finding: NetworkFinding) -> tuple[int, int, str, bool, str]:
    return (
        -finding.affected,
        KIND_ORDER.index(finding.kind),
        finding.value,
        finding.unreachable,
        finding.category,
    )


def _most_specific(candidates: Sequence[NetworkFinding]) -> list[NetworkFinding]:
    """Drop findings whose devices a more specific finding of the same reason already names."""
    kept: list[NetworkFinding] = []
    covered: dict[tuple[str, bool], set[str]] = {}
    for finding in sorted(candidates, key=_specificity):
        seen = covered.setdefault((finding.category, finding.unreachable), set())
        if set(finding.devices) <= seen:
            continue
        kept.append(finding)
        seen.update(finding.devices)
    return kept


_NETWORK_NOUN = {"lan": "LAN", "public_address": "network", "site": "site", "label": "label"}


def _where(key: tuple[str, str], group: Sequence[_Member]) -> str:
    """How the network owner knows the network: `network 203.0.113.7 (site: depot-3)`."""
    kind, value = key
    text = f"{_NETWORK_NOUN.get(kind, kind)} {value}"
    sites = {m.site for m in group}
    if kind != "site" and len(sites) == 1 and None not in sites:
        text += f" (site: {sites.pop()})"
    return text


_CONNECT_TO = re.compile(r"connect to ([A-Za-z0-9.-]+\.[A-Za-z]{2,}) port (\d{1,5})")
_HOST_PORT = re.compile(r"(?<![\w.-])([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}):(\d{1,5})\b")
_BALENA_HOST = re.compile(r"\b((?:[a-z0-9-]+\.)+balena-cloud\.com)\b")
_ENDPOINT_CATEGORIES = frozenset({"vpn", "firewall", "api", "registry"})


def _endpoints(finding: Finding) -> set[tuple[str, int]]:
    """(host, TCP port) pairs a finding's evidence names; hostnames only, IPs rotate."""
    found: set[tuple[str, int]] = set()
    for line in finding.evidence:
        pairs = _CONNECT_TO.findall(line) or _HOST_PORT.findall(line)
        found.update((host.lower(), int(port)) for host, port in pairs)
        if not pairs:
            found.update((host, 443) for host in _BALENA_HOST.findall(line))
    return found


def _shared_endpoint(affected: Sequence[_Member], category: str) -> tuple[str, int] | None:
    """The endpoint most affected devices' evidence names, if a majority name the same one."""
    if category not in _ENDPOINT_CATEGORIES:
        return None
    per_device = Counter(
        endpoint
        for m in affected
        for endpoint in set().union(*(_endpoints(f) for f in m.causes[category]))
    )
    if not per_device:
        return None
    best = min(per_device, key=lambda e: (-per_device[e], e))
    return best if per_device[best] * 2 > len(affected) else None


_DEFAULT_TARGETS = {
    "vpn": "cloudlink",
    "firewall": "balenaCloud",
    "api": "the balena API",
    "registry": "the balena registry",
}

_PROBLEMS = {
    "time": "blocks NTP (UDP 123)",
    "dns": "breaks DNS (UDP 53)",
    "dpi": "intercepts TLS",
    "supervisor": "keeps the supervisor from reporting to balenaCloud",
    "os_config": "keeps os-config from fetching device configuration",
    "access": "has devices never reachable",
}

_REMEDIATIONS = {
    "vpn": "Allow outbound TCP 443 to cloudlink.balena-cloud.com (allow-listing "
    "*.balena-cloud.com covers every balena endpoint), without proxying or inspecting it.",
    "firewall": "Allow outbound TCP 443 to *.balena-cloud.com (API, cloudlink, registry, delta) "
    "on this network's firewall.",
    "api": "Allow outbound TCP 443 to api.balena-cloud.com (allow-list *.balena-cloud.com).",
    "registry": "Allow outbound TCP 443 to registry2.balena-cloud.com and "
    "delta.balena-cloud.com (allow-list *.balena-cloud.com).",
    "time": "Allow outbound UDP 123 to any host (the NTP pool rotates, so per-IP rules fail), "
    "or provide an NTP server on this network and list it in config.json ntpServers.",
    "dns": "Allow outbound UDP and TCP 53 to the devices' DNS servers, or hand out a working "
    "resolver by DHCP (config.json dnsServers can name one).",
    "dpi": "Exempt *.balena-cloud.com from TLS inspection, or add the inspecting proxy's CA to "
    "config.json balenaRootCA on every device of this network.",
    "supervisor": "Check that this network allows outbound TCP 443 to *.balena-cloud.com; "
    "the devices themselves are not the cause.",
    "os_config": "Check that this network allows outbound TCP 443 to api.balena-cloud.com; "
    "the devices themselves are not the cause.",
    "access": "Devices that never come online on one network usually sit behind a firewall "
    "blocking balena's outbound traffic: allow TCP 443 to *.balena-cloud.com, UDP 123 (NTP) "
    "and UDP 53 (DNS), then inspect one device locally or through a gateway device on its LAN.",
}


def _problem(category: str, code: str, endpoint: tuple[str, int] | None) -> str:
    """What the network does to its devices, in the network owner's words."""
    if category in _DEFAULT_TARGETS:
        if endpoint is not None:
            return f"blocks TCP {endpoint[1]} to {endpoint[0]}"
        return f"blocks TCP 443 to {_DEFAULT_TARGETS[category]}"
    return _PROBLEMS.get(category, f"shares one failure ({code})")


def _remediation(category: str, endpoint: tuple[str, int] | None) -> str:
    """What the network owner should change."""
    if endpoint is not None:
        host, port = endpoint
        text = f"Allow outbound TCP {port} to {host} on this network's firewall."
        if host.endswith("balena-cloud.com"):
            text += " Allow-listing *.balena-cloud.com on TCP 443 covers every balena endpoint."
        return text
    return _REMEDIATIONS.get(category, "Check this network's firewall for the failing service.")
