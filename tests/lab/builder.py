"""Build the whole lab (cloud, routers, devices in parallel) and wait until it has settled."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.lab import cloud, faults, topology
from tests.lab.device import DeviceKeys, LabDevice, wait_for
from tests.lab.netns import Lab, run
from tests.lab.pki import DPI_CA_SUBJECT, LAB_CA_SUBJECT, Pair, issue, make_ca

SETTLE_TIMEOUT_S = 45.0


@dataclass
class LabWorld:
    """A running lab: its devices, and the files orch needs to reach them."""

    lab: Lab
    work: Path
    cloud_ns: str
    devices: dict[str, LabDevice]
    client_key: Path
    known_hosts: Path
    ca: Pair
    dpi_ca: Pair
    build_seconds: float = 0.0

    def device(self, name: str) -> LabDevice:
        return self.devices[name]


def build_world(lab: Lab) -> LabWorld:
    """Build everything; raises on any failure (the caller tears down)."""
    started = time.monotonic()
    work = lab.workdir
    pki = work / "pki"
    pki.mkdir()
    ca = make_ca(pki, "lab-ca", LAB_CA_SUBJECT)
    dpi_ca = make_ca(pki, "dpi-ca", DPI_CA_SUBJECT)
    dpi_leaf = issue(dpi_ca, pki, "dpi-api", "api.lab.test", "serverAuth")
    client_key = work / "orch_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "orch-lab", "-f", str(client_key)])
    proxy_host_key = work / "proxy_host_key"
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(proxy_host_key)])
    specs = topology.devices()
    registry = {spec.uuid: spec.vpn_ip for spec in specs}
    cloud_ns = cloud.build_cloud(
        lab,
        ca,
        work,
        {
            "authorized": client_key.with_suffix(".pub"),
            "host_key": proxy_host_key,
            "device_key": client_key,
        },
        registry,
    )
    routers = {
        site.name: cloud.build_router(lab, site, cloud_ns, work, ca) for site in topology.SITES
    }
    keys = DeviceKeys(authorized_keys=client_key.with_suffix(".pub"), ca=ca)
    (work / "dev").mkdir()
    devices = {spec.name: LabDevice(lab, spec, work / "dev" / spec.name) for spec in specs}
    for spec in specs:
        faults.apply_router_device_fault(lab, routers[spec.site.name], spec, dpi_leaf, work)
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda d: d.build(routers[d.spec.site.name], keys), devices.values()))
    known = [
        f"{topology.PROXY_IP} "
        + " ".join(proxy_host_key.with_suffix(".pub").read_text().split()[:2])
    ]
    known += [f"[{d.spec.lan_ip}]:22222 {d.host_key_line}" for d in devices.values()]
    known_hosts = work / "known_hosts"
    known_hosts.write_text("\n".join(known) + "\n")
    world = LabWorld(lab, work, cloud_ns, devices, client_key, known_hosts, ca, dpi_ca)
    _settle(world)
    world.build_seconds = time.monotonic() - started
    return world


def _settle(world: LabWorld) -> None:
    """Wait until the VPN is up where it should be and healthy clocks are synchronised."""
    waiting = [d for d in world.devices.values() if d.spec.vpn_expected_up]
    try:
        wait_for(
            lambda: all(d.vpn_up for d in waiting),
            SETTLE_TIMEOUT_S,
            "VPN up on " + ", ".join(d.spec.name for d in waiting if not d.vpn_up),
        )
    except TimeoutError as exc:
        down = [d for d in waiting if not d.vpn_up]
        logs = [world.work / "cloud-openvpn.log"]
        for device in down[:2]:
            logs += [device.root / "run" / "lab" / "openvpn.log", device.root / "openvpn.out"]
        raise TimeoutError(f"{exc}\n{_tails(logs)}") from None
    synced = [
        d
        for d in world.devices.values()
        if d.spec.fault not in ("clock_skewed", "ntp_blocked", "dns_dead_upstream")
    ]
    wait_for(
        lambda: all(
            "Leap status     : Normal" in d.sh("chronyc -n tracking").stdout for d in synced
        ),
        SETTLE_TIMEOUT_S,
        "chronyd to synchronise",
    )


def _tails(paths: list[Path], lines: int = 15) -> str:
    """The last ``lines`` lines of each log that exists, for a timeout's message."""
    parts = []
    for path in paths:
        if path.is_file():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path}\n" + "\n".join(tail))
    return "\n".join(parts) or "(no logs)"
