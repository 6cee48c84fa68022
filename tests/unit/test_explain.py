"""`explain_text` on each of the seed's excerpts names the root cause the seed names."""

from pathlib import Path

import pytest

from orchestrator.diagnosis.explain import explain_text

SEED = Path(__file__).resolve().parents[1] / "fixtures" / "seed"


def seed(name: str) -> str:
    return (SEED / f"{name}.txt").read_text()


@pytest.mark.parametrize(
    ("fixture", "roots", "explained"),
    [
        (
            "6.1_openvpn_not_yet_valid",
            ["time.clock_skewed"],
            {"vpn.tls_failed": "time.clock_skewed"},
        ),
        (
            "6.1_openvpn_verify_excerpt",
            ["time.clock_skewed"],
            {"vpn.tls_failed": "time.clock_skewed"},
        ),
        ("6.1_chronyd_clock_wrong", ["time.clock_skewed"], {}),
        (
            "6.1_supervisor_not_yet_valid",
            ["time.clock_skewed"],
            {
                "supervisor.state_report_failing": "time.clock_skewed",
                "vpn.down": "time.clock_skewed",
            },
        ),
        ("6.2_dnsmasq_status", ["dns.resolver_file_missing"], {}),
        (
            "6.2_supervisor_eai_again",
            ["dns.resolution_failed"],
            {"supervisor.state_report_failing": "dns.resolution_failed"},
        ),
        (
            "6.2_curl_resolve",
            ["dns.resolution_failed"],
            {"api.unreachable": "dns.resolution_failed"},
        ),
        ("6.4.1_dpi", ["dpi.tls_intercepted"], {"api.tls_failed": "dpi.tls_intercepted"}),
    ],
)
def test_seed_excerpt_root_cause(fixture, roots, explained):
    result = explain_text(seed(fixture))
    assert result.verdict == "problems"
    assert result.root_causes == roots
    by_code = {f.code: f for f in result.findings}
    for code, cause in explained.items():
        assert by_code[code].caused_by == cause


def test_whole_dns_section_names_both_faults():
    result = explain_text(
        seed("6.2_dnsmasq_status") + seed("6.2_supervisor_eai_again") + seed("6.2_curl_resolve")
    )
    assert set(result.root_causes) == {"dns.resolver_file_missing", "dns.upstream_dead"}
    assert all(f.caused_by in (None, "dns.upstream_dead") for f in result.findings)


def test_os_config_failures_before_recovery_and_without_it():
    assert explain_text(seed("6.3_os_config")).verdict == "healthy"
    failing = "\n".join(seed("6.3_os_config").splitlines()[:5])
    result = explain_text(failing)
    assert result.root_causes == ["time.clock_skewed"]
    assert {f.code: f.caused_by for f in result.findings}[
        "os_config.fetch_failed"
    ] == "time.clock_skewed"


@pytest.mark.parametrize(
    "fixture", ["6.3_openvpn_healthy", "6.1_supervisor_recovered", "6.1_openvpn_recovered"]
)
def test_healthy_logs(fixture):
    result = explain_text(seed(fixture))
    assert (result.verdict, result.root_causes) == ("healthy", [])


def test_unrelated_text_is_inconclusive_and_json_shape():
    result = explain_text("Dear support, the device in room 4 is blinking.\nThanks, Pat\n")
    assert result.to_dict() == {"verdict": "inconclusive", "root_causes": [], "findings": []}
    shaped = explain_text(seed("6.4.1_dpi")).to_dict()
    assert set(shaped) == {"verdict", "root_causes", "findings"}
    assert set(shaped["findings"][0]) == {
        "code",
        "category",
        "severity",
        "summary",
        "evidence",
        "remediation",
        "caused_by",
    }
