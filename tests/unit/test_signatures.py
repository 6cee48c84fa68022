"""Log signatures on the seed's journals and on variants of the real wording."""

import random
from pathlib import Path

import pytest

from orchestrator.diagnosis import signatures
from orchestrator.diagnosis.signatures import PROBLEM, scan

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed"
REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"


def keys(text: str) -> dict:
    return {o.key: o.value for o in scan(text)}


@pytest.mark.parametrize(
    ("fixture", "present", "absent"),
    [
        ("6.1_openvpn_not_yet_valid", {"log.vpn.tls_not_yet_valid"}, {"log.vpn.connected"}),
        (
            "6.1_chronyd_clock_wrong",
            {"log.chrony.clock_wrong", "log.chrony.selected_source"},
            {"log.chrony.no_selectable_sources", "log.chrony.no_online_sources"},
        ),
        (
            "6.1_supervisor_not_yet_valid",
            {
                "log.supervisor.state_report_failure",
                "log.supervisor.vpn_not_active",
                "log.supervisor.tls_not_yet_valid",
            },
            set(),
        ),
        (
            "6.1_supervisor_recovered",
            {"log.supervisor.reported_state"},
            {"log.supervisor.state_report_failure"},
        ),
        ("6.2_dnsmasq_status", {"log.dns.resolv_missing", "log.dns.nameservers"}, set()),
        (
            "6.2_supervisor_eai_again",
            {"log.supervisor.resolve_failure", "log.supervisor.waiting_for_connectivity"},
            set(),
        ),
        ("6.2_curl_resolve", {"log.curl.resolve_failure", "log.curl.curl_error"}, set()),
        ("6.3_os_config", {"log.os_config.config_retrieved"}, {"log.os_config.fetch_failed"}),
        (
            "6.3_openvpn_healthy",
            {"log.vpn.connected"},
            {"log.vpn.connect_refused", "log.text.connect_refused"},
        ),
        (
            "6.4.1_dpi",
            {"log.curl.tls_untrusted", "log.openssl.verify_error", "log.openssl.issuer"},
            {"log.vpn.tls_untrusted"},
        ),
    ],
)
def test_seed_journals(fixture, present, absent):
    got = keys((SEED / f"{fixture}.txt").read_text())
    assert present <= set(got), set(got)
    assert not (absent & set(got))


def test_values_are_extracted():
    assert keys((SEED / "6.2_dnsmasq_status.txt").read_text())["log.dns.nameservers"] == (
        "1.2.3.4",
    )
    sup = keys((SEED / "6.2_supervisor_eai_again.txt").read_text())
    assert (
        sup["log.supervisor.state_report_failure"] == "getaddrinfo EAI_AGAIN api.balena-cloud.com"
    )
    assert "RCSI-TLS-PROTECT" in keys((SEED / "6.4.1_dpi.txt").read_text())["log.openssl.issuer"][0]


def test_benign_lines_raise_nothing():
    text = (
        "Aug 19 10:24:55 f220105 openvpn[2656]: ip: RTNETLINK answers: File exists\n"
        "Aug 19 10:24:55 f220105 openvpn[2632]: Fri Aug 19 10:24:55 2022 ERROR: Linux route add command failed: external program exited with error status: 2\n"
    )
    assert scan(text) == []


def test_only_errors_after_the_last_vpn_success_count():
    healthy = (SEED / "6.3_openvpn_healthy.txt").read_text()
    error = (SEED / "6.1_openvpn_not_yet_valid.txt").read_text()
    assert "log.vpn.tls_not_yet_valid" not in keys(error + healthy)
    assert "log.vpn.tls_not_yet_valid" in keys(healthy + error)


@pytest.mark.parametrize(
    ("line", "key"),
    [
        # journalctl -o short-iso and short-precise prefixes, resin names, British spelling
        (
            '2022-08-19T10:12:34+0000 9294512 resin-supervisor[2405]: [event]   Event: Device state report failure {"error":"getaddrinfo EAI_AGAIN api.balena-cloud.com"}',
            "log.supervisor.state_report_failure",
        ),
        (
            "Aug 19 10:12:34.123456 host chronyd[1]: Can't synchronise: no selectable sources",
            "log.chrony.no_selectable_sources",
        ),
        (
            "> > Mar 23 12:01:09 9294512 healthdog[2011]: 2017-03-23T12:01:09Z Cannot synchronize: no selectable sources",
            "log.chrony.no_selectable_sources",
        ),
        (
            "[chrony-healthcheck][INFO] NTP time lost synchronisation - restarting chronyd",
            "log.chrony.lost_sync_restart",
        ),
        # OpenVPN 2.6 wording
        (
            "2024-05-01 10:00:00 us=1 VERIFY ERROR: depth=1, error=certificate is not yet valid: CN=open-balena-vpn-rootCA, serial=123",
            "log.vpn.tls_not_yet_valid",
        ),
        (
            "Aug 19 10:00:00 host openvpn[9]: 2024-05-01 10:00:00 Could not determine IPv4/IPv6 protocol",
            "log.vpn.resolve_failure",
        ),
        (
            "Aug 19 10:00:00 host openvpn[9]: Bad encapsulated packet length from peer (5635), which must be > 0 and <= 1627",
            "log.vpn.middlebox",
        ),
        (
            "Aug 19 10:00:00 host openvpn[9]: TCP: connect to [AF_INET]52.4.252.97:443 failed: Connection timed out",
            "log.vpn.connect_timeout",
        ),
        # JSON-escaped node stack trace and Go errors
        (
            '{"message":"Error: getaddrinfo EAI_AGAIN api.balena-cloud.com\\n    at GetAddrInfoReqWrap.onlookup (dns.js:67:26)"}',
            "log.text.resolve_failure",
        ),
        (
            'Get "https://registry2.balena-cloud.com/v2/": dial tcp: lookup registry2.balena-cloud.com on 127.0.0.2:53: read udp 127.0.0.1:5353->127.0.0.2:53: i/o timeout',
            "log.text.resolve_failure",
        ),
        (
            'Error response from daemon: Get "https://registry2.balena-cloud.com/v2/": x509: certificate signed by unknown authority',
            "log.text.tls_untrusted",
        ),
        (
            "Aug 06 14:41:03 localhost os-config[1610]: https://api.balena-cloud.com/os/v1/config: error trying to connect: failed to lookup address information: Name or service not known",
            "log.os_config.fetch_failed",
        ),
    ],
)
def test_wording_variants(line, key):
    assert key in keys(line)


def test_real_chronyd_and_dnsmasq_logs():
    assert keys((REAL / "chronyd_synced_log.txt").read_text()) == {"log.chrony.selected_source": 1}
    dead = keys((REAL / "dnsmasq_dead_upstream_log.txt").read_text())
    assert dead["log.dns.nameservers"] == ("127.0.0.9",)


def test_each_fact_has_one_kind():
    # scan drops superseded problems by dropping their whole (source, fact) group
    kinds: dict[str, set[str]] = {}
    for sig in signatures.SIGNATURES:
        kinds.setdefault(sig.fact, set()).add(sig.kind)
    assert all(len(found) == 1 for found in kinds.values())


def _scan_by_definition(text, default_source=None):
    """The catalogue's rule, stated pairwise on ``hits``: a problem is dropped when any later
    hit of the same source resets its fact (a TLS error resets resolve and connect failures);
    what is left is grouped by source and fact, in order of each group's first line."""
    found = signatures.hits(text, default_source)
    reached = {"resolve_failure", "connect_timeout", "connect_refused"}

    def resets(hit):
        return hit.resets or (reached if hit.fact in signatures._TLS_FACTS else set())

    kept = [
        hit
        for index, hit in enumerate(found)
        if not (
            hit.kind == PROBLEM
            and any(
                later.source == hit.source and hit.fact in resets(later)
                for later in found[index + 1 :]
            )
        )
    ]
    grouped: dict = {}
    for hit in kept:
        grouped.setdefault((hit.source, hit.fact), []).append(hit)
    return [
        (
            f"log.{source}.{fact}",
            signatures._combine(fact, [hit.value for hit in group]),
            signatures._evidence([hit.line for hit in group]),
        )
        for (source, fact), group in grouped.items()
    ]


def _catalogue_lines():
    """Every line of the seed and real fixtures that some signature or benign pattern reads."""
    lines = set()
    for path in [*SEED.glob("*.txt"), *REAL.glob("*.txt")]:
        for line in path.read_text(errors="replace").splitlines():
            if line.strip() and signatures.hits(line):
                lines.add(line)
    return sorted(lines)


def test_scan_agrees_with_the_rule_on_random_journals():
    pool = _catalogue_lines()
    assert len(pool) > 60
    resetting = [line for line in pool if any(h.resets for h in signatures.hits(line))]
    assert resetting  # health lines that supersede problems are in the mix
    rng = random.Random(7)
    for _ in range(1500):
        picked = [rng.choice(pool) for _ in range(rng.randrange(0, 25))]
        if picked and rng.random() < 0.5:
            picked.insert(rng.randrange(len(picked) + 1), rng.choice(resetting))
        text = "\n".join(picked)
        default = rng.choice([None, "vpn", "supervisor"])
        got = [(o.key, o.value, o.evidence) for o in scan(text, "p", default)]
        assert got == _scan_by_definition(text, default), text


def test_a_long_journal_of_one_failure_is_read_in_one_pass():
    # a day of OpenVPN retries pasted into `orch explain`: 20,000 failure lines, then recovery
    failing = "".join(
        f"Nov 25 10:{i // 60 % 60:02d}:{i % 60:02d} dev openvpn[123]: TLS Error: TLS handshake failed\n"
        for i in range(20_000)
    )
    recovered = "Nov 25 11:00:00 dev openvpn[123]: Initialization Sequence Completed\n"
    assert keys(failing) == {"log.vpn.tls_handshake_failed": 20_000}
    assert keys(failing + recovered) == {"log.vpn.connected": 1}
