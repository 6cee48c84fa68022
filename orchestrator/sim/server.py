"""A fleet of simulated balenaOS devices served by real asyncssh servers on 127.0.0.1.

Each device gets its own listener (ephemeral port), its own rendered root (see render.py) and
runs every exec request (`sh -s`, ...) in a real ``/bin/sh`` whose PATH starts with the fake
device commands of ``fakebin/``. The fakes are the only simulated part: balenaOS daemons cannot
run here, so their answers are rendered from each device's state model.

Gateways accept direct-tcpip channels to the lan-only devices of their LAN, addressed by a name
only the gateway knows (see ``model.LAN_ONLY_SUFFIX``), so a jump route works and a direct one
cannot. Devices with a ``behaviour`` misbehave on purpose for transport tests: ``hang`` never
answers, ``drop`` closes the connection mid-output, ``flood`` prints 50 MB, ``forge`` prints
fake frame markers carrying the run's own nonce.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from orchestrator.models import Device
from orchestrator.sim import model, render
from orchestrator.sim.model import SimDeviceSpec
from orchestrator.transport.sshlib import asyncssh

LAN_SSH_PORT = 22222
FLOOD_BYTES = 50 * 1024 * 1024
DROP_AFTER_BYTES = 200
_NONCE_LINE = re.compile(rb"(?m)^N=([0-9A-Za-z]+)$")
_CHUNK = 65536


@dataclass
class SimDevice:
    """One running simulated device."""

    spec: SimDeviceSpec
    root: Path
    state: Path
    port: int = 0
    server: asyncssh.SSHAcceptor | None = None


class _DeviceSSHServer(asyncssh.SSHServer):
    """Authenticates the fleet's client key as root and forwards gateway channels."""

    def __init__(self, fleet: SimFleet, device: SimDevice) -> None:
        self._fleet = fleet
        self._device = device
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == "root" and key.public_data == self._fleet.client_key.public_data

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> object:
        port = self._fleet.forward_port(self._device, dest_host, dest_port)
        if port is None or self._conn is None:
            return False
        return self._conn.forward_connection("127.0.0.1", port)


def _install_fakebin(target: Path) -> Path:
    """Copy the fake commands next to the fleet (executable bits survive any packaging)."""
    target.mkdir(parents=True, exist_ok=True)
    source = resources.files("orchestrator.sim").joinpath("fakebin")
    for entry in source.iterdir():
        path = target / entry.name
        path.write_bytes(entry.read_bytes())
        path.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return target


class SimFleet:
    """Async context manager running one SSH server per simulated device.

    ``max_processes`` caps the shells running at once across the fleet (extra sessions wait).
    """

    def __init__(
        self,
        specs: Sequence[SimDeviceSpec],
        *,
        workdir: Path | None = None,
        max_processes: int = 128,
    ) -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError("simulated device names must be unique")
        self._specs = list(specs)
        self._workdir = workdir
        self._own_workdir = workdir is None
        self._max_processes = max_processes
        self._devices: dict[str, SimDevice] = {}
        self._forwards: dict[str, dict[tuple[str, int], int]] = {}
        self._procs: asyncio.Semaphore | None = None
        self._running: set[asyncio.subprocess.Process] = set()
        self.client_key: asyncssh.SSHKey = asyncssh.generate_private_key("ssh-ed25519")
        self.host_key: asyncssh.SSHKey = asyncssh.generate_private_key("ssh-ed25519")

    async def __aenter__(self) -> SimFleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Render every device root and start the listeners."""
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="orch-sim-"))
        self._procs = asyncio.Semaphore(self._max_processes)
        self._bin = _install_fakebin(self._workdir / "bin")
        await asyncio.to_thread(self._render_all)
        try:
            for device in self._devices.values():
                device.server = await asyncssh.listen(
                    "127.0.0.1",
                    0,
                    server_host_keys=[self.host_key],
                    server_factory=lambda device=device: _DeviceSSHServer(self, device),
                    process_factory=lambda process, device=device: self._serve(device, process),
                    encoding=None,
                    allow_scp=False,
                    sftp_factory=None,
                    keepalive_interval=0,
                )
                device.port = device.server.get_port()
        except BaseException:
            await self.close()
            raise
        self._map_gateways()

    def _render_all(self) -> None:
        assert self._workdir is not None
        for spec in self._specs:
            root = self._workdir / "devices" / spec.name
            state = render.render_device(spec, root)
            (root / "tmp").mkdir(exist_ok=True)
            self._devices[spec.name] = SimDevice(spec=spec, root=root, state=state)

    def _map_gateways(self) -> None:
        for device in self._devices.values():
            spec = device.spec
            if spec.lan_only:
                gateway = spec.gateway
                if gateway not in self._devices or not self._devices[gateway].spec.is_gateway:
                    raise ValueError(f"{spec.name}: lan-only device needs a gateway device")
                routes = self._forwards.setdefault(gateway, {})
                routes[(spec.lan_address, LAN_SSH_PORT)] = device.port

    def forward_port(self, gateway: SimDevice, host: str, port: int) -> int | None:
        """The loopback port a gateway forwards ``host:port`` to, or None (refused)."""
        return self._forwards.get(gateway.spec.name, {}).get((host, port))

    async def close(self) -> None:
        """Stop listeners, end running shells, remove the work dir if we made it."""
        for proc in list(self._running):
            _kill_group(proc)
        for device in self._devices.values():
            if device.server is not None:
                device.server.close()
        for device in self._devices.values():
            if device.server is not None:
                with contextlib.suppress(Exception):
                    await device.server.wait_closed()
                device.server = None
        if self._own_workdir and self._workdir is not None:
            await asyncio.to_thread(shutil.rmtree, self._workdir, True)
            self._workdir = None

    @property
    def specs(self) -> list[SimDeviceSpec]:
        """The device specs, in fleet order."""
        return list(self._specs)

    def device(self, name: str) -> SimDevice:
        """A running device by name (KeyError if unknown)."""
        return self._devices[name]

    @property
    def devices(self) -> list[Device]:
        """The fleet as orch sees it (lan-only devices carry their gateway)."""
        result = []
        for spec in self._specs:
            running = self._devices[spec.name]
            gateway = self._devices[spec.gateway].spec.uuid if spec.gateway else None
            result.append(
                Device(
                    uuid=spec.uuid,
                    name=spec.name,
                    address=spec.lan_address if spec.lan_only else "127.0.0.1",
                    port=LAN_SSH_PORT if spec.lan_only else running.port,
                    user="root",
                    site=spec.site,
                    labels=spec.labels,
                    gateway=gateway,
                    public_address=spec.public_address,
                    is_online=True,
                    is_connected_to_vpn=model.vpn_up(spec),
                    os_version="balenaOS 2.108.28",
                    supervisor_version="14.11.14",
                    fleet="demo",
                )
            )
        return result

    def known_hosts_lines(self) -> list[str]:
        """known_hosts lines for every device address (one shared host key)."""
        public = self.host_key.export_public_key().decode().strip()
        return [f"[{device.address}]:{device.port} {public}" for device in self.devices]

    def write_client_files(self, directory: Path | str) -> tuple[Path, Path]:
        """Write the client private key (mode 600) and a known_hosts file; return both paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        key_path = directory / "id_ed25519"
        self.client_key.write_private_key(str(key_path))
        key_path.chmod(0o600)
        known_hosts = directory / "known_hosts"
        known_hosts.write_text("\n".join(self.known_hosts_lines()) + "\n")
        return key_path, known_hosts

    def _env(self, device: SimDevice, nonce: str | None) -> dict[str, str]:
        env = {
            "PATH": f"{self._bin}:/usr/bin:/bin",
            "ORCH_DEVICE_ROOT": str(device.root),
            # The probe script assigns R from ORCH_DEVICE_ROOT without exporting it; an R
            # already in the environment is exported, so each step's `sh -c` sees the root.
            "R": str(device.root),
            "ORCH_SIM_STATE": str(device.state),
            "HOME": str(device.root / "home/root"),
            "TMPDIR": str(device.root / "tmp"),
            "LANG": "C",
            "USER": "root",
        }
        if nonce:
            env["ORCH_SIM_NONCE"] = nonce
        return env

    async def _serve(self, device: SimDevice, process: asyncssh.SSHServerProcess) -> None:
        behaviour = device.spec.behaviour
        try:
            if behaviour == "hang":
                await process.channel.wait_closed()
            elif behaviour == "flood":
                await _flood(process)
            else:
                await self._run_shell(device, process, behaviour)
        except (asyncssh.Error, BrokenPipeError, ConnectionError):
            pass
        finally:
            if not process.is_closing():
                process.close()

    async def _run_shell(
        self, device: SimDevice, process: asyncssh.SSHServerProcess, behaviour: str | None
    ) -> None:
        assert self._procs is not None
        prefix = b""
        nonce = None
        if behaviour == "forge":
            prefix, nonce = await _read_until_nonce(process.stdin)
        command = process.command or "sh -s"
        async with self._procs:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env(device, nonce),
                cwd=str(device.root / "home/root"),
                start_new_session=True,
            )
            self._running.add(proc)
            conn = process.channel.get_connection()
            try:
                limit = DROP_AFTER_BYTES if behaviour == "drop" else None
                tasks = [
                    asyncio.ensure_future(_pump_out(proc.stdout, process.stdout, limit)),
                    asyncio.ensure_future(_pump_out(proc.stderr, process.stderr, None)),
                    asyncio.ensure_future(_pump_in(process.stdin, proc.stdin, prefix)),
                ]
                closed = asyncio.ensure_future(process.channel.wait_closed())
                wanted = tasks[:1] if behaviour == "drop" else tasks[:2]
                finished = asyncio.gather(*wanted)
                done, _ = await asyncio.wait(
                    {finished, closed}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in (*tasks, closed):
                    if not task.done():
                        task.cancel()
                if closed in done:
                    return
                if behaviour == "drop":
                    conn.abort()
                    return
                process.exit(await proc.wait())
            finally:
                _kill_group(proc)
                self._running.discard(proc)
                with contextlib.suppress(ProcessLookupError, ChildProcessError):
                    await proc.wait()
                _close_pipes(proc)


def _close_pipes(proc: asyncio.subprocess.Process) -> None:
    """Close the shell's pipes now. Output nobody read any more (the client went away) keeps a
    pipe, and so the subprocess transport, open until garbage collection, which may come after
    the event loop has closed and then fails ("Event loop is closed")."""
    transport = getattr(proc, "_transport", None)  # asyncio keeps no public handle on it
    if transport is not None:
        transport.close()


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


async def _read_until_nonce(stdin: asyncssh.SSHReader) -> tuple[bytes, str | None]:
    """Read the script's head until its nonce line (forge behaviour needs the nonce)."""
    data = b""
    while len(data) < _CHUNK:
        chunk = await stdin.read(4096)
        if not chunk:
            break
        data += chunk
        match = _NONCE_LINE.search(data)
        if match:
            return data, match.group(1).decode()
    return data, None


async def _pump_in(src: asyncssh.SSHReader, dst: asyncio.StreamWriter | None, first: bytes) -> None:
    if dst is None:
        return
    try:
        if first:
            dst.write(first)
        while True:
            data = await src.read(_CHUNK)
            if not data:
                break
            dst.write(data)
            await dst.drain()
    except (BrokenPipeError, ConnectionResetError, asyncssh.Error):
        pass
    finally:
        dst.close()


async def _pump_out(
    src: asyncio.StreamReader | None, dst: asyncssh.SSHWriter, limit: int | None
) -> None:
    if src is None:
        return
    sent = 0
    while True:
        data = await src.read(_CHUNK)
        if not data:
            return
        if limit is not None and sent + len(data) >= limit:
            dst.write(data[: max(1, limit - sent)])
            await dst.drain()
            return
        sent += len(data)
        dst.write(data)
        await dst.drain()


async def _flood(process: asyncssh.SSHServerProcess) -> None:
    line = b"flooding output that never ends " * 2048
    sent = 0
    while sent < FLOOD_BYTES:
        process.stdout.write(line)
        await process.stdout.drain()
        sent += len(line)
    process.exit(0)
