"""Every probe step is read-only: statically (no write, restart, kill or config-edit operation in
any command, for default and customised endpoints) and for real (the whole probe script runs
against a fake device root under `unshare -n` and nothing outside its private temp dir changes,
and no config.json secret reaches the output)."""

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestrator.probes.base import Endpoints
from orchestrator.probes.registry import PROBES, steps_for
from orchestrator.probes.script import build_script, new_nonce, split_output

CUSTOM = Endpoints(
    api="https://api.example.org:8443",
    cloudlink="https://vpn.example.org",
    registry="https://registry.example.org",
    delta="https://delta.example.org",
    ntp_host="ntp.example.org",
    supervisor="http://127.0.0.1:48485",
    customer=("mqtt.example.com:8883", "198.18.7.9:502"),
    expected_issuers=("Example Trust",),
)
ALL_STEPS = [
    (label, step)
    for label, ends in (("default", Endpoints()), ("custom", CUSTOM))
    for step in steps_for(PROBES, ends)
]

FORBIDDEN = [
    (
        r"(?<![\w-])(rm|mv|cp|tee|dd|touch|mkdir|rmdir|chmod|chown|ln|truncate|install|shred)\s",
        "file write",
    ),
    (r"\bsed\b[^|;]*\s-i", "sed -i"),
    (
        r"\bsystemctl\s+(start|stop|restart|reload|kill|enable|disable|mask|isolate|reset-failed)\b",
        "unit change",
    ),
    (
        r"\b(reboot|shutdown|poweroff|halt|mount|umount|iptables|ip6tables|nft|hwclock|timedatectl\s+set)\b",
        "system change",
    ),
    (
        r"\bnmcli\s+(?!-t\s+-f\s+\S+\s+device\s+(show\b|wifi\s+list\s+--rescan\s+no\b))",
        "nmcli other than the terse read-only device show / wifi list --rescan no",
    ),
    (r"\b(kill|pkill|killall)\b", "kill"),
    (r"\bdate\b[^|;]*\s(-s|--set)\b", "clock set"),
    (
        r"\bchronyc\b[^|;]*\b(makestep|burst|settime|offline|online|add|delete|reselect|local|manual)\b",
        "chrony change",
    ),
    (
        r"\bip\s+(-\S+\s+)*(link|addr|address|route|neigh|rule)\s+(add|del|delete|set|change|replace|flush)\b",
        "network change",
    ),
    (
        r"\bcurl\b[^|;]*\s(-O|--remote-name|-X\s*(POST|PUT|DELETE|PATCH)|-d|--data\S*|-T|--upload-file)\b",
        "curl write",
    ),
    (r"\bcurl\b[^|;]*\s(-o|--output)\s+(?!/dev/null)\S+", "curl output file"),
    (r"\bopenssl\b[^|;]*\s-out\b", "openssl output file"),
    (r"\bjournalctl\b[^|;]*--(vacuum|rotate|flush)", "journal change"),
    (r">>", "append redirection"),
    (r"(?<![0-9&])>\s*(?!/dev/null|&)\S", "redirection to a file"),
    (r"\d>\s*(?!/dev/null|&)\S", "redirection to a file"),
    (
        r"\b(cat|head|tail|less|more|jq|od|xxd|base64|strings|awk)\b[^|;]*config\.json",
        "whole config.json",
    ),
]


@pytest.mark.parametrize(
    ("label", "step"), ALL_STEPS, ids=[f"{kind}-{s.name}" for kind, s in ALL_STEPS]
)
def test_step_command_is_read_only(label, step):
    for pattern, what in FORBIDDEN:
        assert not re.search(pattern, step.command), f"{step.name}: {what}: {step.command}"
    if "config.json" in step.command:
        assert re.search(r"grep -(o|c)", step.command), step.command


def test_the_checker_catches_writes():
    bad = [
        "rm -f /x",
        "sed -i s/a/b/ f",
        "systemctl restart chronyd",
        "date -s 2017-01-01",
        "chronyc makestep",
        "echo x > /etc/resolv.dnsmasq",
        "curl -o /tmp/x https://a",
        'cat "$R/mnt/boot/config.json"',
        "nmcli connection up eth0",
        "nmcli -t -f SIGNAL device wifi list",
        "nmcli radio wifi off",
    ]
    for command in bad:
        assert any(re.search(p, command) for p, _ in FORBIDDEN), command


def _snapshot(*roots: Path) -> dict[str, str]:
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            stat = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
            found[str(path)] = f"{stat.st_mode}:{stat.st_mtime_ns}:{digest}"
    return found


def _fake_root(root: Path) -> None:
    (root / "mnt/boot").mkdir(parents=True)
    (root / "mnt/boot/config.json").write_text(
        '{"apiEndpoint":"https://api.balena-cloud.com","deviceApiKey":"SECRET-device-key-0f3c",'
        '"dnsServers":"1.2.3.4","balenaRootCA":"U0VDUkVULWNhLWJsb2I=","wifiKey":"SECRET-wifi-9a"}'
    )
    (root / "etc").mkdir()
    (root / "etc/resolv.dnsmasq").write_text("nameserver 198.18.0.1\n")
    (root / "run/openvpn/vpn_status").mkdir(parents=True)
    (root / "run/openvpn/vpn_status/active").write_text("")
    (root / "run/dnsmasq.servers").write_text("server=198.18.0.1\n")


@pytest.mark.timeout(150)
def test_probe_script_changes_nothing_for_real(tmp_path):
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare for a private network namespace")
    root, home, work, tmp = (tmp_path / n for n in ("root", "home", "work", "tmp"))
    _fake_root(root)
    for d in (home, work, tmp):
        d.mkdir()
    steps = steps_for(PROBES, CUSTOM)
    nonce = new_nonce()
    script = build_script(steps, nonce, budget_s=90)
    before = _snapshot(root, home, work, tmp)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "ORCH_DEVICE_ROOT": str(root),
        "LANG": "C",
        # script.py sets R without exporting it, so steps (run via `sh -c`) would not see it
        "R": str(root),
    }
    proc = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up 2>/dev/null; exec sh -s"],
        input=script,
        cwd=work,
        env=env,
        capture_output=True,
        timeout=140,
    )
    after = _snapshot(root, home, work, tmp)
    assert before == after
    result = split_output(proc.stdout, nonce, steps)
    assert result.hello and result.done, proc.stderr[-500:]
    assert not [s.name for s in result.steps.values() if s.missing]
    assert b"SECRET" not in proc.stdout
    assert result.steps["vpn.status"].output.strip() == "active"
    assert result.steps["tls.root_ca"].output.strip() == "1"
    assert '"dnsServers":"1.2.3.4"' in result.steps["dns.config"].output
