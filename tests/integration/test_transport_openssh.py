"""SSHTransport against a real OpenSSH sshd on a loopback ephemeral port (needs root and sshd)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from orchestrator.models import Route
from orchestrator.probes.base import Step
from orchestrator.probes.script import build_script, new_nonce, split_output
from orchestrator.transport.ssh import SSHSettings, SSHTransport
from tests.support import closed_port, run
from tests.support.sshserver import known_hosts_line, new_key, write_client_key

SSHD = "/usr/sbin/sshd"

pytestmark = [
    pytest.mark.skipif(not os.path.exists(SSHD), reason=f"OpenSSH server not installed ({SSHD})"),
    pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="running sshd as a login target needs root"),
]

SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {tmp}/sshd.pid
AuthorizedKeysFile {tmp}/authorized_keys
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
LogLevel ERROR
"""


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"sshd exited with {proc.returncode}: {err.strip()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within {timeout_s}s")


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A running sshd trusting a fresh client key; yields its port, keys and files."""
    client_key = new_key()
    key_file = write_client_key(client_key, tmp_path / "id_ed25519")
    (tmp_path / "authorized_keys").write_bytes(client_key.export_public_key())
    host_key = tmp_path / "ssh_host_ed25519_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
        check=True,
        capture_output=True,
    )
    port = closed_port()
    config = tmp_path / "sshd_config"
    config.write_text(SSHD_CONFIG.format(port=port, host_key=host_key, tmp=tmp_path))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_for_port(port, proc)
        public = asyncssh.read_public_key(str(host_key) + ".pub")
        known = tmp_path / "known_hosts"
        known.write_text(known_hosts_line("127.0.0.1", port, public))
        yield {"port": port, "key_file": key_file, "known_hosts": known, "tmp": tmp_path}
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()


def test_probe_script_through_openssh(sshd):
    steps = (Step("clock", "date -u +%s"), Step("whoami", "id -un"))
    nonce = new_nonce()
    settings = SSHSettings(key_files=(str(sshd["key_file"]),), known_hosts=str(sshd["known_hosts"]))
    route = Route("direct", "127.0.0.1", sshd["port"], "root")
    result = run(SSHTransport(settings).run_script(route, build_script(steps, nonce, 20)))

    assert result.error is None, result.error
    assert result.exit_status == 0
    split = split_output(result.stdout, nonce, steps, result.chunk_times)
    assert split.done
    assert split.steps["whoami"].output == "root\n"
    assert abs(int(split.steps["clock"].output) - result.sent_at) < 3
    assert split.steps["clock"].received_at >= result.sent_at


def test_openssh_host_key_mismatch(sshd):
    stale = sshd["tmp"] / "stale_known_hosts"
    stale.write_text(known_hosts_line("127.0.0.1", sshd["port"], new_key()))
    settings = SSHSettings(key_files=(str(sshd["key_file"]),), known_hosts=str(stale))
    route = Route("direct", "127.0.0.1", sshd["port"], "root")
    result = run(SSHTransport(settings).run_script(route, b"echo must-not-run\n"))

    assert result.error is not None and result.error.kind == "hostkey"
    assert "MISMATCH" in str(result.error) and str(stale) in str(result.error)
    assert result.stdout == b""


def test_openssh_unauthorized_key_is_auth_error(sshd):
    other = write_client_key(new_key(), sshd["tmp"] / "other_key")
    settings = SSHSettings(key_files=(str(other),), known_hosts=str(sshd["known_hosts"]))
    route = Route("direct", "127.0.0.1", sshd["port"], "root")
    result = run(SSHTransport(settings).run_script(route, b"true\n"))

    assert result.error is not None and result.error.kind == "auth"
    assert str(other) in str(result.error) and "user root" in str(result.error)
