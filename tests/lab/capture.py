"""Real output of the lab daemons and tools, captured into ``tests/fixtures/lab/`` for parser tests.

Each entry is (file name, device, command); the file holds the command's stdout followed by its
stderr, exactly as the tool printed them inside that lab device.
"""

from __future__ import annotations

from pathlib import Path

from tests.lab.builder import LabWorld

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "lab"
CURL = "curl -sS -m 8 --connect-timeout 6 -w '\\n%{http_code} %{remote_ip} %{time_connect} %{time_total}\\n' "
CAPTURES: tuple[tuple[str, str, str], ...] = (
    ("chronyc_tracking_synced.txt", "a-healthy", "chronyc -n tracking"),
    ("chronyc_sources_synced.txt", "a-healthy", "chronyc -n sources"),
    ("chronyc_tracking_ntp_blocked.txt", "b-ntp", "chronyc -n tracking"),
    ("chronyc_sources_ntp_blocked.txt", "b-ntp", "chronyc -n sources"),
    ("chronyc_tracking_stopped.txt", "a-clock", "chronyc -n tracking"),
    ("journal_chronyd_synced.txt", "a-healthy", "journalctl --no-pager -n 50 -u chronyd.service"),
    ("journal_openvpn_healthy.txt", "a-healthy", "journalctl --no-pager -n 60 -u openvpn.service"),
    (
        "journal_openvpn_not_yet_valid.txt",
        "a-clock",
        "journalctl --no-pager -n 30 -u openvpn.service",
    ),
    ("journal_openvpn_rejected.txt", "c-1", "journalctl --no-pager -n 30 -u openvpn.service"),
    (
        "journal_openvpn_dropped.txt",
        "a-cloudlink",
        "journalctl --no-pager -n 30 -u openvpn.service",
    ),
    (
        "journal_dnsmasq_dead_upstream.txt",
        "a-dns",
        "journalctl --no-pager -n 30 -u dnsmasq.service",
    ),
    (
        "journal_supervisor_unhealthy.txt",
        "a-supervisor",
        "curl -s -o /dev/null http://127.0.0.1:48484/v1/healthy; "
        "journalctl --no-pager -n 5 -u balena-supervisor.service",
    ),
    ("curl_api_ping_ok.txt", "a-healthy", CURL + "https://api.lab.test/ping"),
    ("curl_api_not_yet_valid.txt", "a-clock", CURL + "https://api.lab.test/ping"),
    ("curl_api_dpi.txt", "a-dpi", CURL + "https://api.lab.test/ping"),
    ("curl_api_dead_dns.txt", "a-dns", CURL + "https://api.lab.test/ping"),
    ("curl_cloudlink_dropped.txt", "a-cloudlink", CURL + "https://cloudlink.lab.test/ping"),
    ("curl_cloudlink_rejected.txt", "c-1", CURL + "https://cloudlink.lab.test/ping"),
    ("curl_registry_401.txt", "a-healthy", CURL + "https://registry.lab.test/v2/"),
    ("curl_supervisor_healthy_500.txt", "a-supervisor", CURL + "http://127.0.0.1:48484/v1/healthy"),
    (
        "openssl_showcerts_dpi.txt",
        "a-dpi",
        "openssl s_client -connect api.lab.test:443 -servername api.lab.test -showcerts </dev/null 2>&1",
    ),
    (
        "openssl_showcerts_not_yet_valid.txt",
        "a-clock",
        "openssl s_client -connect api.lab.test:443 -servername api.lab.test -showcerts </dev/null 2>&1",
    ),
    ("nslookup_dead_upstream.txt", "a-dns", "nslookup api.lab.test 198.19.255.254"),
    ("nslookup_local_dead_upstream.txt", "a-dns", "nslookup api.lab.test"),
    ("systemctl_openvpn_stopped.txt", "a-novpn", "systemctl is-active openvpn.service"),
)


def capture_all(world: LabWorld, target: Path = FIXTURES) -> list[Path]:
    """Run every capture and write its file; returns the files written."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, device, command in CAPTURES:
        result = world.device(device).sh(command, timeout=60)
        path = target / name
        path.write_text(result.stdout + result.stderr)
        written.append(path)
    return written
