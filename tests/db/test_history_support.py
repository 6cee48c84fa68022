"""Realistic device reports and run helpers shared by the history tests (no tests here)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from sqlalchemy import create_engine, update

from orchestrator.models import DeviceReport, Finding, NetworkFinding, NetworkKeys, StepOutput
from orchestrator.store import Store
from orchestrator.store.schema import Run

_SUMMARIES = {
    "time.chronyd_stopped": "chronyd is not running: nothing keeps the clock right",
    "time.ntp_unreachable": "no NTP source answers (Reach 0): UDP 123 is likely blocked",
    "firewall.tcp_rejected": "TCP 443 to cloudlink.balena-cloud.com is refused",
    "dns.resolution_failed": "api.balena-cloud.com does not resolve",
    "dpi.tls_intercepted": "TLS to api.balena-cloud.com is intercepted (issuer CN=RCSI-TLS-PROTECT)",
    "firewall.tcp_dropped": "TCP to cloudlink.balena-cloud.com:443 times out",
}

DEPOT = NetworkKeys(
    public_address="203.0.113.7",
    gateway_ip="192.168.50.1",
    gateway_mac="00:1b:21:3a:50:01",
    subnet="192.168.50.0/24",
    site="depot-3",
    labels=("east",),
)
OFFICE = NetworkKeys(
    public_address="198.51.100.20",
    gateway_ip="10.1.0.1",
    gateway_mac="00:1b:21:3a:60:02",
    subnet="10.1.0.0/24",
    site="office",
)


def device(
    uuid: str,
    name: str,
    roots: Sequence[str] = (),
    *,
    reachable: bool = True,
    network: NetworkKeys = OFFICE,
    network_cause: str | None = None,
) -> DeviceReport:
    """A device report with `roots` as root causes, each explaining a supervisor symptom, plus an
    info finding (which is never a root cause) and a couple of raw steps."""
    findings: list[Finding] = []
    for code in roots:
        category = code.split(".")[0]
        findings.append(
            Finding(
                code=code,
                category=category,
                severity="error",
                summary=_SUMMARIES.get(code, code),
                evidence=(f"evidence for {code}",),
                remediation="see orch explain",
            )
        )
        findings.append(
            Finding(
                code="supervisor.api_unreachable",
                category="supervisor",
                severity="warning",
                summary="the supervisor cannot reach the API",
                caused_by=code,
            )
        )
    if not reachable:
        findings = [Finding("access.timeout", "access", "error", "could not connect within 10 s")]
    else:
        findings.append(Finding("dns.ok", "dns", "info", "DNS resolves"))
    now = datetime.now(timezone.utc)
    return DeviceReport(
        uuid=uuid,
        name=name,
        reachable=reachable,
        route="direct root@198.18.0.10:22222" if reachable else "proxy root@ssh.example:22",
        error=None if reachable else "connect timed out after 10 s",
        error_kind=None if reachable else "timeout",
        findings=tuple(findings),
        steps=(
            StepOutput("date", "1764000000.123\n", 0, duration_s=0.01),
            StepOutput("ip-route", "default via 10.1.0.1 dev eth0\n", 0, duration_s=0.02),
        )
        if reachable
        else (),
        network=network,
        started_at=now,
        finished_at=now + timedelta(seconds=3),
        network_cause=network_cause,
    )


def vpn_blocked_at_depot(devices: Sequence[str], total: int) -> NetworkFinding:
    """The network finding the pattern finder gives for the depot's blocked VPN."""
    return NetworkFinding(
        kind="public_address",
        value="203.0.113.7",
        category="vpn",
        code="firewall.tcp_rejected",
        devices=tuple(sorted(devices)),
        affected=len(devices),
        total=total,
        summary=f"network 203.0.113.7 (site: depot-3) blocks TCP 443 to cloudlink: "
        f"{len(devices)} of {total} devices",
        remediation="Allow outbound TCP 443 to cloudlink.balena-cloud.com.",
    )


def dns_broken_at_office(devices: Sequence[str], total: int) -> NetworkFinding:
    """A network finding for the office LAN's broken DNS."""
    return NetworkFinding(
        kind="site",
        value="office",
        category="dns",
        code="dns.resolution_failed",
        devices=tuple(sorted(devices)),
        affected=len(devices),
        total=total,
        summary=f"site office breaks DNS (UDP 53): {len(devices)} of {total} devices",
        remediation="Allow outbound UDP and TCP 53.",
    )


def record_run(
    store: Store,
    reports: Sequence[DeviceReport],
    network: Sequence[NetworkFinding] = (),
    *,
    fleet: str | None = "depots",
    source: str = "balena:depots",
    status: str = "completed",
) -> int:
    """Store one run the way `orch diagnose` does; returns its id."""
    run_id = store.start_run(
        source=source, fleet=fleet, devices_total=len(reports), options={"probes": None}
    )
    store.save_reports(run_id, reports)
    store.save_network_findings(run_id, network)
    if status != "running":
        store.finish_run(run_id, status)
    return run_id


def set_started(db_url: str, run_id: int, started: datetime) -> None:
    """Move a run's start time (runs are created `now`)."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(update(Run).where(Run.id == run_id).values(started_at=started))
    finally:
        engine.dispose()
