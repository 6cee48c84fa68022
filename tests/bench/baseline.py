"""The bare asyncssh loop orch is compared with: connect, ``sh -s`` with the script, close.

One options object with the key and known_hosts preloaded, a semaphore of ``--concurrency``
connections, no parsing or storage: the practical floor for a Python SSH fan-out. Prints how
many devices answered with output that carries the script's nonce.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
from pathlib import Path

import asyncssh


async def sweep(
    devices: list[dict],
    options: asyncssh.SSHClientConnectionOptions,
    script: bytes,
    nonce: bytes,
    concurrency: int,
) -> int:
    gate = asyncio.Semaphore(concurrency)

    async def one(device: dict) -> bool:
        async with gate:
            try:
                async with asyncssh.connect(
                    device["address"], device["port"], username=device["user"], options=options
                ) as conn:
                    result = await conn.run("sh -s", input=script, encoding=None, check=False)
            except (OSError, asyncssh.Error):
                return False
            return nonce in (result.stdout or b"")

    return sum(await asyncio.gather(*(one(device) for device in devices)))


async def sweep_orch_transport(
    devices: list[dict],
    key: str,
    known_hosts: str,
    script: bytes,
    nonce: bytes,
    concurrency: int,
    proxy_port: int | None = None,
) -> int:
    """The same loop through orch's own transport (its options, deadlines, output capture);
    with ``proxy_port``, every device as a ``host <uuid>`` session on the proxy stand-in."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from orchestrator.models import Route
    from orchestrator.transport.ssh import SSHSettings, SSHTransport

    transport = SSHTransport(SSHSettings(key_files=(key,), known_hosts=known_hosts))
    gate = asyncio.Semaphore(concurrency)

    async def one(device: dict) -> bool:
        if proxy_port is None:
            route = Route("direct", device["address"], device["port"], device["user"])
        else:
            route = Route("proxy", "127.0.0.1", proxy_port, "bench", f"host {device['uuid']}")
        async with gate:
            result = await transport.run_script(route, script, deadline_s=120)
        return nonce in result.stdout

    try:
        return sum(await asyncio.gather(*(one(device) for device in devices)))
    finally:
        await transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--inventory", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--known-hosts", required=True)
    parser.add_argument("--script", required=True)
    parser.add_argument("--nonce", required=True)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument(
        "--orch-transport",
        action="store_true",
        help="use orch's SSHTransport (no parsing or storage) instead of the bare loop",
    )
    parser.add_argument(
        "--proxy-port",
        type=int,
        help="with --orch-transport: reach devices through the proxy stand-in on this port",
    )
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    devices = json.loads(Path(args.inventory).read_text())
    options = asyncssh.SSHClientConnectionOptions(
        client_keys=[asyncssh.read_private_key(args.key)],
        known_hosts=asyncssh.read_known_hosts(args.known_hosts),
        agent_path=None,
        config=None,
        gss_auth=False,
        gss_kex=False,
    )
    script = Path(args.script).read_bytes()
    if args.orch_transport:
        ok = asyncio.run(
            sweep_orch_transport(
                devices,
                args.key,
                args.known_hosts,
                script,
                args.nonce.encode(),
                args.concurrency,
                args.proxy_port,
            )
        )
    else:
        ok = asyncio.run(sweep(devices, options, script, args.nonce.encode(), args.concurrency))
    print(json.dumps({"devices_ok": ok}))
    sys.exit(0)


if __name__ == "__main__":
    main()
