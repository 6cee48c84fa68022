"""Run orch against the lab from inside the cloud namespace (where orch sits "on the internet").

:func:`diagnose_cli` runs the real ``orch diagnose`` command line with an inventory (direct
routes). :func:`sweep_via_proxy` runs :func:`orchestrator.sweep.run_sweep` with balena-API-style
devices (VPN state, public address, LAN IPs) so the route planner picks ``proxy`` and
``hostvia`` through the lab SSH proxy. Both return orch's JSON document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.lab import topology
from tests.lab.builder import LabWorld
from tests.lab.netns import in_ns

REPO = Path(__file__).resolve().parents[2]
CLI = "from orchestrator.cli import main; main()"


def write_config(world: LabWorld) -> Path:
    """orch's TOML config for the lab: lab endpoint names, lab SSH key and known_hosts."""
    path = world.work / "orch.toml"
    lines = ["[endpoints]"]
    lines += [f'{key} = "{value}"' for key, value in topology.ENDPOINTS.items()]
    lines += [f'dns_control = "{topology.DNS_IP}"']  # the lab's stand-in for 8.8.8.8
    lines += [
        "",
        "[ssh]",
        f'keys = ["{world.client_key}"]',
        f'known_hosts = "{world.known_hosts}"',
        "connect_timeout = 5.0",
        "device_timeout = 90.0",
        "",
        "[balena]",
        f'ssh_host = "{topology.PROXY_IP}"',
        'ssh_user = "labuser"',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_inventory(world: LabWorld) -> Path:
    """An inventory of every lab device at its LAN address (orch routes to each site's LAN)."""
    entries = [
        {
            "uuid": d.spec.uuid,
            "name": d.spec.name,
            "address": d.spec.lan_ip,
            "port": 22222,
            "user": "root",
            "site": d.spec.site.name,
            "public_address": d.spec.site.public_ip,
        }
        for d in world.devices.values()
    ]
    path = world.work / "inventory.yaml"
    path.write_text(yaml.safe_dump(entries))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "ORCH_CONFIG": ""}


def diagnose_cli(world: LabWorld, db_name: str) -> tuple[int, dict]:
    """``orch diagnose --inventory ... --format json`` in the cloud namespace: (exit, document)."""
    argv = [
        sys.executable,
        "-c",
        CLI,
        "--config",
        str(write_config(world)),
        "diagnose",
        "--inventory",
        str(write_inventory(world)),
        "--key",
        str(world.client_key),
        "--known-hosts",
        str(world.known_hosts),
        "--db",
        f"sqlite:///{world.work / db_name}",
        "--format",
        "json",
    ]
    proc = subprocess.run(
        in_ns(world.cloud_ns, argv),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=240,
        env=_env(),
        cwd=REPO,
        check=False,
    )
    if not proc.stdout.strip().startswith("{"):
        raise AssertionError(f"orch diagnose failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc.returncode, json.loads(proc.stdout)


SWEEP = """
import asyncio, json, sys
from orchestrator.config import load_config
from orchestrator.models import Device
from orchestrator.store import Store
from orchestrator.sweep import SweepRequest, run_sweep, ssh_settings_from
from orchestrator.transport.routes import RouteSettings
args = json.loads(sys.argv[1])
config = load_config(args["config"])
devices = [Device(**{**d, "local_ips": tuple(d["local_ips"])}) for d in args["devices"]]
store = Store.open(args["db"])
ssh = ssh_settings_from(config)
routes = RouteSettings(mode=args["mode"], proxy_host=args["proxy_host"], proxy_port=22,
                       proxy_user="labuser")
outcome = asyncio.run(run_sweep(devices, SweepRequest(source_label="lab"), config, store, ssh, routes))
print(json.dumps({"devices": [
    {"uuid": r.uuid, "name": r.name, "reachable": r.reachable, "route": r.route,
     "error": r.error, "root_causes": list(r.root_causes),
     "findings": [f.to_dict() for f in r.findings]} for r in outcome.reports],
    "network_findings": [n.to_dict() for n in outcome.network_findings]}))
"""


def sweep_via_proxy(world: LabWorld, db_name: str, mode: str = "auto") -> dict:
    """run_sweep over the lab SSH proxy, devices described as the balena API would."""
    devices = [
        {
            "uuid": d.spec.uuid,
            "name": d.spec.name,
            "site": d.spec.site.name,
            "public_address": d.spec.site.public_ip,
            "local_ips": [d.spec.lan_ip],
            "is_online": d.vpn_up,
            "is_connected_to_vpn": d.vpn_up,
        }
        for d in world.devices.values()
    ]
    args = {
        "config": str(write_config(world)),
        "devices": devices,
        "mode": mode,
        "proxy_host": topology.PROXY_IP,
        "db": f"sqlite:///{world.work / db_name}",
    }
    proc = subprocess.run(
        in_ns(world.cloud_ns, [sys.executable, "-c", SWEEP, json.dumps(args)]),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=240,
        env=_env(),
        cwd=REPO,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"proxy sweep failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(proc.stdout)
