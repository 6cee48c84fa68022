"""curl output classification on real curl 7.88 output captured here (tests/fixtures/README.md)."""

import json
from pathlib import Path

import pytest

from orchestrator.models import StepOutput
from orchestrator.probes.curl_result import classify_error, curl_command, parse_curl

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
CODES = json.loads((REAL / "exit_codes.json").read_text())


def real(name: str, step: str = "x") -> StepOutput:
    return StepOutput(step, (REAL / f"{name}.txt").read_text(), exit_code=CODES.get(name))


@pytest.mark.parametrize(
    ("fixture", "outcome", "status", "connected"),
    [
        ("curl_ping_ok", "http", 200, True),
        ("curl_registry_401", "http", 401, True),
        ("curl_supervisor_healthy_500", "http", 500, True),
        ("curl_connectivity_check_204", "http", 204, True),
        ("curl_exit6_resolver_refused", "resolve", None, False),
        ("curl_exit6_dnsmasq_dead_upstream", "resolve_timeout", None, False),
        ("curl_exit28_resolving_timeout", "resolve_timeout", None, False),
        ("curl_exit28_connect_dropped", "connect_timeout", None, False),
        ("curl_exit28_connect_timeout_opt", "connect_timeout", None, False),
        ("curl_exit7_refused", "refused", None, False),
        ("curl_exit7_reject_reset", "refused", None, False),
        ("curl_supervisor_down", "refused", None, False),
        ("curl_exit35_not_tls", "tls_handshake", None, True),
        ("curl_exit60_untrusted", "tls_untrusted", None, True),
        ("curl_exit60_dpi", "tls_untrusted", None, True),
        ("curl_exit60_not_yet_valid", "tls_not_yet_valid", None, True),
        ("curl_exit60_expired", "tls_expired", None, True),
        ("curl_telnet_open", "timeout", None, True),
        ("curl_telnet_refused", "refused", None, False),
        ("curl_telnet_dropped", "connect_timeout", None, False),
    ],
)
def test_real_curl_outcomes(fixture, outcome, status, connected):
    result = parse_curl(real(fixture))
    assert result.outcome == outcome
    assert result.http_status == status
    assert result.connected is connected
    if outcome != "http":
        assert result.error and result.error.startswith("curl: (")


def test_body_is_kept_without_the_write_out_line():
    assert parse_curl(real("curl_ping_ok")).body == "OK"
    assert parse_curl(real("curl_supervisor_healthy_500")).body == "Unhealthy"


def test_missing_step_and_exit_code_taken_from_stderr_when_absent():
    assert parse_curl(None).outcome == "missing"
    text = (REAL / "curl_exit6_resolver_refused.txt").read_text()
    assert parse_curl(StepOutput("x", text, exit_code=None)).exit_code == 6


def test_gnutls_wording_and_no_route_are_classified():
    message = "server certificate verification failed. CAfile: /etc/ssl/certs/ca-certificates.crt"
    assert classify_error(60, message) == "tls_untrusted"
    assert (
        classify_error(7, "Failed to connect to h port 443 after 3 ms: No route to host")
        == "no_route"
    )


def test_command_has_write_out_and_quotes_odd_urls():
    command = curl_command("https://api.example.com/ping?x=1&y=2")
    assert "-w '\\n%{http_code}" in command
    assert command.endswith("'https://api.example.com/ping?x=1&y=2'")
