"""The bare asyncssh loop orch is compared with: connect, ``sh -s`` with the script, close.

One options object with the key and known_hosts preloaded, a semaphore of ``--concurrency``
connections, no parsing or storage: the practical floor for a Python SSH fan-out. Prints how
many devices answered with output that carries the script's nonce.

``--jump``: devices whose inventory entry names a ``gateway`` are reached through an SSH
connection to that gateway (one per gateway, opened once and shared, asyncssh's ``tunnel=``):
the same floor for the jump route, which pays a second SSH layer per target.
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
    jump: bool = False,
) -> int:
    gate = asyncio.Semaphore(concurrency)
    by_uuid = {device["uuid"]: device for device in devices}
    gateways: dict[str, asyncio.Task] = {}

    def gateway(uuid: str) -> asyncio.Task:
        if uuid not in gateways:
            hop = by_uuid[uuid]
            gateways[uuid] = asyncio.ensure_future(
                asyncssh.connect(hop["address"], hop["port"], username=hop["user"], options=options)
            )
        return gateways[uuid]

    async def one(device: dict) -> bool:
        async with gate:
            try:
                tunnel = await gateway(device["gateway"]) if jump and device.get("gateway") else ()
                async with asyncssh.connect(
                    device["address"],
                    device["port"],
                    username=device["user"],
                    options=options,
                    tunnel=tunnel,
                ) as conn:
                    result = await conn.run("sh -s", input=script, encoding=None, check=False)
            except (OSError, asyncssh.Error):
                return False
            return nonce in (result.stdout or b"")

    try:
        return sum(await asyncio.gather(*(one(device) for device in devices)))
    finally:
        for task in gateways.values():
            if task.done() and not task.exception():
                task.result().close()


async def sweep_orch_transport(
    devices: list[dict],
    key: str,
    known_hosts: str,
    script: bytes,
    nonce: bytes,
    concurrency: int,
    proxy_port: int | None = None,
    jump: bool = False,
) -> int:
    """The same loop through orch's own transport (its options, deadlines, output capture);
    with ``proxy_port``, every device as a ``host <uuid>`` session on the proxy stand-in; with
    ``jump``, devices that name a gateway through it (orch's gateway connection pool)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from orchestrator.models import Route
    from orchestrator.transport.ssh import SSHSettings, SSHTransport

    transport = SSHTransport(SSHSettings(key_files=(key,), known_hosts=known_hosts))
    gate = asyncio.Semaphore(concurrency)

    by_uuid = {device["uuid"]: device for device in devices}

    def direct(device: dict) -> Route:
        return Route("direct", device["address"], device["port"], device["user"])

    async def one(device: dict) -> bool:
        if proxy_port is None:
            route = direct(device)
            if jump and device.get("gateway"):
                route = Route(
                    "jump",
                    route.host,
                    route.port,
                    route.user,
                    via=direct(by_uuid[device["gateway"]]),
                )
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
    parser.add_argument(
        "--jump",
        action="store_true",
        help="reach devices that name a gateway through an SSH connection to it",
    )
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    devices = json.loads(Path(args.inventory).read_text())
    script = Path(args.script).read_bytes()
    if args.orch_transport:  # orch reads the key and known_hosts itself
        ok = asyncio.run(
            sweep_orch_transport(
                devices,
                args.key,
                args.known_hosts,
                script,
                args.nonce.encode(),
                args.concurrency,
                args.proxy_port,
                args.jump,
            )
        )
    else:
        options = asyncssh.SSHClientConnectionOptions(
            client_keys=[asyncssh.read_private_key(args.key)],
            known_hosts=asyncssh.read_known_hosts(args.known_hosts),
            agent_path=None,
            config=None,
            gss_auth=False,
            gss_kex=False,
        )
        ok = asyncio.run(
            sweep(devices, options, script, args.nonce.encode(), args.concurrency, args.jump)
        )
    print(json.dumps({"devices_ok": ok}))
    sys.exit(0)


if __name__ == "__main__":
    main()
