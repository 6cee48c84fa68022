"""SSHTransport against a real OpenSSH sshd on a loopback ephemeral port (needs root and sshd)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
    with _running_sshd(tmp_path, new_key()) as server:
        yield server


@contextmanager
def _running_sshd(
    tmp_path: Path, client_key: asyncssh.SSHKey, extra_config: str = ""
) -> Iterator[dict[str, object]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
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
    config.write_text(SSHD_CONFIG.format(port=port, host_key=host_key, tmp=tmp_path) + extra_config)
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


def _negotiated(sshd, settings: SSHSettings) -> tuple[str, str]:
    transport = SSHTransport(settings)

    async def connect() -> tuple[str, str]:
        async with asyncssh.connect(
            "127.0.0.1", sshd["port"], username="root", options=transport.options
        ) as conn:
            return conn.get_extra_info("send_cipher"), conn.get_extra_info("recv_cipher")

    return run(connect())


def test_openssh_negotiates_the_cheap_algorithms_by_default(sshd):
    settings = SSHSettings(key_files=(str(sshd["key_file"]),), known_hosts=str(sshd["known_hosts"]))
    assert _negotiated(sshd, settings) == ("aes128-gcm@openssh.com", "aes128-gcm@openssh.com")


def test_configured_cipher_preference_is_honoured(sshd):
    settings = SSHSettings(
        key_files=(str(sshd["key_file"]),),
        known_hosts=str(sshd["known_hosts"]),
        encryption_algs="chacha20-poly1305@openssh.com",
    )
    assert _negotiated(sshd, settings)[0] == "chacha20-poly1305@openssh.com"


def test_jump_through_an_openssh_gateway_and_its_forwarding_refusal(tmp_path):
    """One gateway connection for several targets; a gateway without forwarding is named."""
    key = new_key()
    with (
        _running_sshd(tmp_path / "target", key) as target,
        _running_sshd(tmp_path / "gateway", key) as gateway,
        _running_sshd(tmp_path / "closed", key, "DisableForwarding yes\n") as closed,
    ):
        known = tmp_path / "known_hosts"
        known.write_text(
            "".join(Path(s["known_hosts"]).read_text() for s in (target, gateway, closed))
        )
        settings = SSHSettings(key_files=(str(target["key_file"]),), known_hosts=str(known))

        def via(server: dict[str, object]) -> Route:
            hop = Route("direct", "127.0.0.1", server["port"], "root")
            return Route("jump", "127.0.0.1", target["port"], "root", via=hop)

        async def scenario():
            transport = SSHTransport(settings)
            ok = await asyncio.gather(
                *(transport.run_script(via(gateway), b"id -un\n") for _ in range(4))
            )
            opened = transport.gateway_pool_for(via(gateway).via).connections_opened
            refused = await transport.run_script(via(closed), b"id -un\n")
            await transport.close()
            return ok, opened, refused

        ok, opened, refused = run(scenario())
    assert [r.stdout for r in ok] == [b"root\n"] * 4 and opened == 1
    assert refused.error is not None and refused.error.kind == "unreachable"
    message = str(refused.error)
    assert message.startswith(
        f"root@127.0.0.1:{target['port']} via gateway root@127.0.0.1:{closed['port']}:"
    )
    assert "refuses to forward" in message and "\n" not in message
