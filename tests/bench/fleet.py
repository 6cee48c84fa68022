"""One process of the benchmark fleet: asyncssh listeners that replay captured probe output.

Run by run_bench.py (``python tests/bench/fleet.py SPEC.json INDEX COUNT``): this process serves
the devices whose position modulo COUNT is INDEX, one loopback listener each, and, when the spec
names a proxy port, a balena-proxy stand-in on that port (``host <uuid>`` and
``hostvia <gateway> <uuid> [ip]``; every fleet process listens on it with SO_REUSEPORT). Each
session reads the script from stdin to EOF, takes the run's nonce from its ``N=`` line and
answers with the device's scenario template (see capture.py), so the fleet costs little CPU and
the client does all the parsing work of a real sweep. Listeners also accept direct-tcpip
channels to 127.0.0.1, so devices serve as jump gateways.

``delay_ms`` (one-way) approximates network latency with asyncio sleeps: two round trips during
authentication, one when the session starts and one before the output. It is not packet delay;
see README.md for measuring under real delay with peerbench's namespace.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import asyncssh

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.capture import NONCE_LINE, Template  # noqa: E402

CHUNK = 32 * 1024


class Fleet:
    """The devices of this process, their templates, keys and delay."""

    def __init__(self, spec: dict[str, Any], index: int, count: int) -> None:
        self.delay_s = spec["delay_ms"] / 1000.0
        self.templates = {k: Template.from_capture(v) for k, v in spec["captures"].items()}
        self.host_key = asyncssh.read_private_key(spec["host_key"])
        self.client_key = asyncssh.read_public_key(spec["client_pub"]).public_data
        self.devices: list[dict[str, Any]] = spec["devices"]
        self.by_uuid = {device["uuid"]: device for device in self.devices}
        self.mine = self.devices[index::count]
        self.proxy_port: int | None = spec.get("proxy_port")
        self.sessions = 0

    async def pause(self, round_trips: float) -> None:
        if self.delay_s:
            await asyncio.sleep(2 * self.delay_s * round_trips)

    async def serve(
        self, device: dict[str, Any] | None, process: asyncssh.SSHServerProcess
    ) -> None:
        """Answer one session: the device's output for the nonce in the script on stdin."""
        try:
            if device is None:
                device = self._proxy_target(process.command or "")
            if device is None:
                process.exit(255)
                return
            await self.pause(1)
            script = await process.stdin.read()
            match = NONCE_LINE.search(script)
            if match is None:
                process.stderr.write(b"bench fleet: no nonce in the script\n")
                process.exit(2)
                return
            template = self.templates[device["scenario"]]
            output = template.render(
                match.group(1), device["uuid"].encode(), device["name"].encode(), time.time()
            )
            await self.pause(1)
            for start in range(0, len(output), CHUNK):
                process.stdout.write(output[start : start + CHUNK])
            self.sessions += 1
            process.exit(template.exit_status)
        except (asyncssh.Error, BrokenPipeError, ConnectionError):
            process.close()

    def _proxy_target(self, command: str) -> dict[str, Any] | None:
        words = command.split()
        if len(words) == 2 and words[0] == "host":
            return self.by_uuid.get(words[1])
        if len(words) in (3, 4) and words[0] == "hostvia" and words[1] in self.by_uuid:
            return self.by_uuid.get(words[2])
        return None


class _Server(asyncssh.SSHServer):
    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        await self._fleet.pause(2)
        return key.public_data == self._fleet.client_key

    def connection_requested(self, dest_host: str, dest_port: int, *_: Any) -> bool:
        return dest_host == "127.0.0.1"


async def main(spec_path: str, index: int, count: int) -> None:
    spec = json.loads(Path(spec_path).read_text())
    fleet = Fleet(spec, index, count)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    common: dict[str, Any] = {
        "server_host_keys": [fleet.host_key],
        "server_factory": lambda: _Server(fleet),
        "encoding": None,
        "allow_scp": False,
        "sftp_factory": None,
        "keepalive_interval": 0,
        "login_timeout": 0,
    }
    listeners = []
    for device in fleet.mine:
        listeners.append(
            await asyncssh.listen(
                "127.0.0.1",
                device["port"],
                process_factory=lambda process, device=device: fleet.serve(device, process),
                **common,
            )
        )
    if fleet.proxy_port:
        listeners.append(
            await asyncssh.listen(
                "127.0.0.1",
                fleet.proxy_port,
                reuse_port=True,
                process_factory=lambda process: fleet.serve(None, process),
                **common,
            )
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for listener in listeners:
        listener.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"sessions={fleet.sessions} cpu_s={usage.ru_utime + usage.ru_stime:.2f}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
