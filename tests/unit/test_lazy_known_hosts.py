"""orch's known_hosts matches exactly as asyncssh's does, reading a key only when asked for it.

The file mixes what real known_hosts files hold: plain names, ``[host]:port`` entries, several
names on one line, names hashed by a real ``ssh-keygen -H``, wildcards, negations, address
ranges, ``@cert-authority`` and ``@revoked`` lines, a line twice, comments and blank lines.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import asyncssh
import pytest

from orchestrator.errors import ConfigError
from orchestrator.transport import lazy_known_hosts
from orchestrator.transport.credentials import SSHSettings, load_known_hosts
from orchestrator.transport.lazy_known_hosts import LazyKnownHosts

KEYS = [asyncssh.generate_private_key("ssh-ed25519") for _ in range(12)]


def public(index: int) -> str:
    return KEYS[index].export_public_key().decode().strip()


PLAIN = f"""# fleet keys
device-a {public(0)}
[device-b]:22222 {public(1)}
device-c,198.18.0.3 {public(2)}

[198.18.0.4]:2222,device-d {public(3)}
Device-E {public(4)}
device-a {public(5)}
device-c,198.18.0.3 {public(2)}
"""
PATTERNS = f"""*.lab.example {public(6)}
198.18.1.* {public(7)}
!bad.lab.example,*.lab.example {public(8)}
198.18.2.0/24 {public(9)}
@cert-authority *.ca.example {public(10)}
@revoked [device-b]:22222 {public(11)}
"""
QUERIES = [
    ("device-a", "", None),
    ("device-a", "198.18.0.1", 22222),
    ("device-b", "", 22222),
    ("device-b", "", None),
    ("device-c", "", None),
    ("other", "198.18.0.3", None),
    ("device-d", "198.18.0.4", 2222),
    ("198.18.0.4", "", 2222),
    ("gateway", "198.18.0.4", 2222),
    ("device-e", "", None),
    ("Device-E", "", None),
    ("x.lab.example", "", None),
    ("bad.lab.example", "", None),
    ("h", "198.18.1.7", 22),
    ("h", "198.18.2.9", None),
    ("node.ca.example", "", 22222),
    ("unknown", "198.18.9.9", 22222),
]


def hashed(text: str, tmp_path: Path) -> str:
    """``text`` with its plain names hashed by OpenSSH's own ``ssh-keygen -H``."""
    if shutil.which("ssh-keygen") is None:
        pytest.skip("needs ssh-keygen (openssh-client)")
    path = tmp_path / "known_hosts"
    path.write_text(text)
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], capture_output=True, check=True)
    hashed_text = path.read_text()
    assert "|1|" in hashed_text
    return hashed_text


def summary(result) -> list[list[bytes]]:
    """A match result as comparable data: the keys' public blobs, and the other lists' sizes."""
    return [[key.public_data for key in found] for found in result[:3]] + [
        [bytes(len(found))] for found in result[3:]
    ]


@pytest.fixture(params=["plain", "hashed"])
def known_hosts_text(request, tmp_path) -> str:
    if request.param == "plain":
        return PLAIN + PATTERNS
    return hashed(PLAIN, tmp_path) + PATTERNS


def test_every_lookup_matches_what_asyncssh_finds(known_hosts_text: str) -> None:
    reference = asyncssh.import_known_hosts(known_hosts_text)
    shared = LazyKnownHosts(known_hosts_text)
    for host, addr, port in QUERIES * 2:  # twice: the second time from what is loaded
        expected = summary(reference.match(host, addr, port))
        first_lookup = LazyKnownHosts(known_hosts_text).match(host, addr, port)
        assert summary(first_lookup) == expected, (host, addr, port)
        assert summary(shared.match(host, addr, port)) == expected, (host, addr, port)
    assert summary(shared.match("device-a", "", None))[0] == [
        KEYS[0].public_data,
        KEYS[5].public_data,
    ]


def test_a_key_is_read_only_when_its_host_is_looked_up(monkeypatch) -> None:
    decoded: list[str] = []
    real = asyncssh.known_hosts.import_public_key

    def spy(data):
        decoded.append(data)
        return real(data)

    monkeypatch.setattr(asyncssh.known_hosts, "import_public_key", spy)
    fleet = "\n".join(f"[198.18.3.{i}]:22222 {public(i % 6)}" for i in range(200))
    lazy = LazyKnownHosts(fleet + "\n" + PATTERNS)
    # the five pattern lines only (tried against every host); not the @revoked line, which
    # names one host exactly, nor any of the 200 devices
    assert len(decoded) == 5
    found = lazy.match("198.18.3.7", "", 22222)
    assert [key.public_data for key in found[0]] == [KEYS[1].public_data]
    assert len(decoded) == 6


def test_a_malformed_line_fails_at_once_as_in_asyncssh() -> None:
    for text in ("device-a\n", "@trusted device-a " + public(0) + "\n"):
        with pytest.raises(ValueError) as asyncssh_error:
            asyncssh.import_known_hosts(text)
        with pytest.raises(ValueError) as ours:
            LazyKnownHosts(text)
        assert str(ours.value) == str(asyncssh_error.value)


def test_orch_reports_an_unreadable_known_hosts_file_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    settings = SSHSettings(known_hosts=str(path))
    with pytest.raises(ConfigError, match=r"cannot read known_hosts file .*No such file"):
        load_known_hosts(settings)
    path.write_text("device-a\n")
    with pytest.raises(ConfigError, match=r"^invalid known_hosts file .*Invalid known hosts entry"):
        load_known_hosts(settings)
    path.write_bytes(b"device-a ssh-ed25519 \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"^invalid known_hosts file .*utf-8"):
        load_known_hosts(settings)
    path.write_text(PLAIN)
    loaded, shown = load_known_hosts(settings)
    assert isinstance(loaded, lazy_known_hosts.LazyKnownHosts) and shown == str(path)
