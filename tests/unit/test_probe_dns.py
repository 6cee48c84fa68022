"""dns probe parser on real BusyBox nslookup output against a real dnsmasq (127.0.0.2) with a
dead upstream, a never-answering sink and a closed port, and on the seed's dnsmasq journal."""

from pathlib import Path

import pytest

from orchestrator.models import StepOutput
from orchestrator.probes import dns
from orchestrator.probes.base import Endpoints, ProbeContext

FIX = Path(__file__).resolve().parents[1] / "fixtures"


def text(name: str) -> str:
    return (FIX / "real" / f"{name}.txt").read_text()


@pytest.mark.parametrize(
    ("fixture", "result"),
    [
        ("nslookup_busybox_ok", "ok"),
        ("nslookup_busybox_dead_upstream", "timeout"),
        ("nslookup_busybox_sink", "timeout"),
        ("nslookup_busybox_closed", "refused"),
    ],
)
def test_real_nslookup(fixture, result):
    assert dns.lookup_result(text(fixture)) == result


def test_nxdomain_wording():
    assert dns.lookup_result("** server can't find nope.invalid: NXDOMAIN\n") == "nxdomain"


def _steps(**outputs):
    return {
        name.replace("_", ".", 1): StepOutput(name.replace("_", ".", 1), out, exit_code=code)
        for name, (out, code) in outputs.items()
    }


def test_seed_broken_dns_state():
    loop = (
        "== server 1.2.3.4\n" + text("nslookup_busybox_sink") + "== rc 1\n"
        "== server 8.8.8.8\n" + text("nslookup_busybox_ok") + "== rc 0\n"
    )
    steps = _steps(
        dns_dnsmasq=("active\n", 0),
        dns_resolv_file=("cat: /etc/resolv.dnsmasq: No such file or directory\n", 1),
        dns_servers_file=("server=1.2.3.4\n", 0),
        dns_config=('"dnsServers":"1.2.3.4"\n', 0),
        dns_local_api=(text("nslookup_busybox_dead_upstream"), 1),
        dns_upstreams=(loop, 0),
        dns_journal=((FIX / "seed" / "6.2_dnsmasq_status.txt").read_text(), 0),
    )
    got = {o.key: o.value for o in dns.PROBE.parse(steps, ProbeContext())}
    assert got["dns.dnsmasq_active"] is True
    assert got["dns.resolv_file_present"] is False
    assert got["dns.upstreams"] == ("1.2.3.4",)
    assert got["dns.config_servers"] == "1.2.3.4"
    assert got["dns.resolves_api"] is False
    assert got["dns.upstream_answers"] == {"1.2.3.4": "timeout", "8.8.8.8": "ok"}
    assert got["log.dns.resolv_missing"] == "/etc/resolv.dnsmasq"


def test_upstream_loop_reads_only_the_dns_servers_key_and_adds_the_control():
    step = next(
        s
        for s in dns.PROBE.steps_for(Endpoints(api="https://api.example.org"))
        if s.name == "dns.upstreams"
    )
    assert "nslookup api.example.org" in step.command
    assert '"dnsServers"' in step.command and dns.CONTROL_SERVER in step.command
    assert 'cat "$R/mnt/boot/config.json"' not in step.command
