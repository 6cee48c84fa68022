"""`orch diagnose --fleet` end to end: the real balena-sdk against a local API stand-in,
simulated devices behind an SSH proxy stand-in, and an offline device reached with `hostvia`.

Stand-ins: tests/support/fake_balena_api.py (balenaCloud's API cannot be reached from here) and
tests/support/proxy_server.py (balena's SSH proxy); the devices are real SSH servers.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from orchestrator.fleet.demo import demo_specs
from orchestrator.sim.server import SimFleet
from tests.support.fake_balena_api import FakeBalenaApi
from tests.support.proxy_server import ForwardTarget, ProxyStandIn, host_key

ROOT = Path(__file__).parents[2]
TOKEN = "test-token-0123456789"
WANTED = {
    "demo-healthy": "online",
    "demo-dns-broken": "online",
    "demo-gateway": "online",
    "demo-gateway-only": "offline",
}


def api_record(index: int, device, spec, online: bool, public: str, lan_ip: str) -> dict:
    return {
        "id": index + 1,
        "uuid": device.uuid,
        "device_name": device.name,
        "is_online": online,
        "api_heartbeat_state": "online" if online else "offline",
        "is_connected_to_vpn": online,
        "last_connectivity_event": "2026-11-24T12:00:00.000Z",
        "ip_address": lan_ip,
        "mac_address": f"02:00:00:00:00:{index:02x}",
        "public_address": public,
        "os_version": "balenaOS 6.0.24+rev1",
        "os_variant": "prod",
        "supervisor_version": "16.7.5",
        "overall_status": "idle" if online else "offline",
        "belongs_to__application": 1000,
    }


def orch(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "from orchestrator.cli import main; main()", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)


def test_diagnose_a_balena_fleet_through_the_proxy_and_hostvia(tmp_path: Path) -> None:
    specs = [s for s in demo_specs() if s.name in WANTED]

    async def scenario() -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess, list]:
        async with SimFleet(specs, workdir=tmp_path / "sim") as fleet:
            key_path, _device_known_hosts = fleet.write_client_files(tmp_path)
            proxy = await ProxyStandIn("gh_tester", [fleet.client_key]).start()
            records = []
            for index, device in enumerate(fleet.devices):
                online = WANTED[device.name] == "online"
                port = fleet.device(device.name).port
                proxy.register(
                    device.uuid,
                    online=online,
                    forward=ForwardTarget("127.0.0.1", port, "root", fleet.client_key),
                )
                records.append(
                    api_record(index, device, None, online, "203.0.113.9", f"198.18.9.{20 + index}")
                )
            known_hosts = tmp_path / "proxy_known_hosts"
            public = host_key().export_public_key().decode().strip()
            known_hosts.write_text(f"[127.0.0.1]:{proxy.port} {public}\n")
            api = FakeBalenaApi(token=TOKEN).start()
            api.add_fleet("gh_tester/demofleet", records, fleet_id=1000)
            config = tmp_path / "orch.toml"
            config.write_text(
                f'[balena]\napi_url = "{api.url}"\nssh_host = "127.0.0.1"\n'
                f"ssh_port = {proxy.port}\n"
            )
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "HOME": str(tmp_path / "home"),
                "BALENA_API_KEY": TOKEN,
            }
            (tmp_path / "home").mkdir()
            common = ["--config", str(config)]
            loop = asyncio.get_running_loop()
            try:
                listed = await loop.run_in_executor(
                    None,
                    orch,
                    [*common, "devices", "--fleet", "gh_tester/demofleet", "--format", "json"],
                    env,
                )
                diagnosed = await loop.run_in_executor(
                    None,
                    orch,
                    [
                        *common,
                        "diagnose",
                        "--fleet",
                        "gh_tester/demofleet",
                        "--key",
                        str(key_path),
                        "--known-hosts",
                        str(known_hosts),
                        "--db",
                        f"sqlite:///{tmp_path / 'orch.sqlite3'}",
                        "--format",
                        "json",
                    ],
                    env,
                )
            finally:
                api.stop()
                await proxy.stop()
            return listed, diagnosed, list(proxy.commands)

    listed, diagnosed, proxy_commands = asyncio.run(scenario())
    assert listed.returncode == 0, listed.stderr
    planned = {row["name"]: row for row in json.loads(listed.stdout)}
    assert planned["demo-healthy"]["route"].startswith("proxy gh_tester@127.0.0.1")
    assert planned["demo-gateway-only"]["route"].startswith("hostvia")

    assert diagnosed.returncode == 1, diagnosed.stderr
    document = json.loads(diagnosed.stdout)
    devices = {d["name"]: d for d in document["devices"]}
    assert document["run"]["source"] == "balena:gh_tester/demofleet"
    assert all(d["reachable"] for d in devices.values()), devices
    assert devices["demo-gateway-only"]["route"].startswith("hostvia")
    assert devices["demo-healthy"]["route"].startswith("proxy")
    assert devices["demo-healthy"]["root_causes"] == []
    assert "dns.upstream_dead" in devices["demo-dns-broken"]["root_causes"]
    assert any(c.startswith("hostvia ") for c in proxy_commands)
    assert any(c.startswith("host ") for c in proxy_commands)
    assert TOKEN not in diagnosed.stdout + diagnosed.stderr
    assert not any((tmp_path / "home").iterdir()), "orch wrote into the home directory"


def test_bad_token_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with FakeBalenaApi(token=TOKEN) as api:
        api.add_fleet("gh_tester/demofleet", [])
        config = tmp_path / "orch.toml"
        config.write_text(f'[balena]\napi_url = "{api.url}"\n')
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BALENA_API_KEY": "wrong-token"}
        result = orch(
            [
                "--config",
                str(config),
                "diagnose",
                "--fleet",
                "gh_tester/demofleet",
                "--db",
                f"sqlite:///{tmp_path / 'o.db'}",
            ],
            env,
        )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "401" in result.stderr and "wrong-token" not in result.stderr


def test_devices_of_all_fleets_with_planned_routes(tmp_path: Path) -> None:
    from tests.support.fake_balena_api import make_devices

    with FakeBalenaApi(token=TOKEN) as api:
        api.add_fleet("gh_tester/north", make_devices(10, start_id=1), fleet_id=1)
        api.add_fleet("gh_tester/south", make_devices(10, start_id=100), fleet_id=2)
        config = tmp_path / "orch.toml"
        config.write_text(f'[balena]\napi_url = "{api.url}"\n')
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BALENA_API_KEY": TOKEN}
        result = orch(["--config", str(config), "devices", "--all-fleets", "--format", "json"], env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {row["fleet"] for row in rows} == {"gh_tester/north", "gh_tester/south"}
    assert len(rows) == 20
    offline = [row for row in rows if not row["vpn"]]
    assert offline and all(row["route"].startswith("hostvia") for row in offline)
    assert all(row["route_reason"] for row in rows)
