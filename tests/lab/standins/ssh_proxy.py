"""A balena SSH proxy stand-in (``ssh.balena-devices.com``), run in the lab cloud namespace.

Usage: ``python ssh_proxy.py LISTEN_IP PORT USER AUTHORIZED_KEYS HOST_KEY DEVICE_KEY REGISTRY``.
``REGISTRY`` is a JSON map ``{uuid: vpn_ip}``. Verbs, as in reference/balena.md section 4:

- ``host <uuid>``: SSH (as root, port 22222) to the device's address on the lab VPN and run the
  session's stdin in ``sh -s`` there. A device whose VPN is down cannot be reached: exit 255.
- ``hostvia <gateway_uuid> <target_uuid> [ip]``: SSH to the gateway over the VPN, then through it
  (a TCP forward from the gateway's LAN) to ``ip:22222`` of the target.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import asyncssh

CONNECT_TIMEOUT_S = 4.0


async def _pump(reader: Any, writer: Any, eof: bool) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if eof:
            writer.write_eof()
    except (BrokenPipeError, ConnectionResetError, asyncssh.Error):
        pass


async def _session(conn: asyncssh.SSHClientConnection, stdin: Any, stdout: Any, stderr: Any) -> int:
    proc = await conn.create_process("sh -s", encoding=None)
    feeder = asyncio.ensure_future(_pump(stdin, proc.stdin, eof=True))
    try:
        await asyncio.gather(_pump(proc.stdout, stdout, False), _pump(proc.stderr, stderr, False))
        await proc.wait_closed()
    finally:
        feeder.cancel()
    return proc.exit_status if proc.exit_status is not None else 255


class ProxyServer(asyncssh.SSHServer):
    """Public-key auth for the lab user; exec requests are proxy verbs."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self.settings["user"] and key.public_data in self.settings["keys"]

    def session_requested(self) -> Any:
        return self._handle

    async def _handle(self, stdin: Any, stdout: Any, stderr: Any) -> None:
        command = stdout.channel.get_command() or ""
        status = 255
        try:
            status = await self._verb(shlex.split(command), stdin, stdout, stderr)
        except (OSError, asyncssh.Error, asyncio.TimeoutError) as exc:
            stderr.write(f"proxy: cannot reach device: {exc or type(exc).__name__}\n".encode())
        finally:
            stdout.channel.exit(status)

    async def _verb(self, words: list[str], stdin: Any, stdout: Any, stderr: Any) -> int:
        registry: dict[str, str] = self.settings["registry"]
        device_key = self.settings["device_key"]
        options = {
            "username": "root",
            "client_keys": [device_key],
            "known_hosts": None,
            "connect_timeout": CONNECT_TIMEOUT_S,
        }
        if len(words) == 2 and words[0] == "host" and words[1] in registry:
            async with asyncssh.connect(registry[words[1]], 22222, **options) as conn:
                return await _session(conn, stdin, stdout, stderr)
        if words[:1] == ["hostvia"] and len(words) in (3, 4) and words[1] in registry:
            target_ip = words[3] if len(words) == 4 else None
            if target_ip is None:
                stderr.write(b"hostvia: target ip unknown\n")
                return 255
            async with (
                asyncssh.connect(registry[words[1]], 22222, **options) as gateway,
                asyncssh.connect(target_ip, 22222, tunnel=gateway, **options) as conn,
            ):
                return await _session(conn, stdin, stdout, stderr)
        stderr.write(f"proxy: unknown device or verb: {' '.join(words)}\n".encode())
        return 255


async def main(
    ip: str, port: str, user: str, authorized: str, host_key: str, device_key: str, registry: str
) -> None:
    settings = {
        "user": user,
        "keys": {k.public_data for k in asyncssh.read_public_key_list(authorized)},
        "device_key": asyncssh.read_private_key(device_key),
        "registry": json.loads(Path(registry).read_text()),
    }
    await asyncssh.listen(
        ip,
        int(port),
        server_host_keys=[host_key],
        server_factory=lambda: ProxyServer(settings),
        encoding=None,
    )
    print("listening", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:8]))
