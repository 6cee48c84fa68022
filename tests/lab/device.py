"""One lab device: a network namespace plus a private mount namespace with balenaOS's layout.

The device's mount namespace (anchored by a ``sleep`` process) overlays its own ``/etc`` on the
host's and binds its own ``/run``, ``/mnt`` (``/mnt/boot/config.json``) and ``/usr/local/bin``
(the ``systemctl``/``journalctl`` stand-ins and BusyBox ``nslookup``, found first on sshd's PATH),
so the probe script's paths are the real ones (``ORCH_DEVICE_ROOT`` stays empty) and devices never
share state. Daemons are started inside both namespaces with ``nsenter``: sshd on 22222 (root key
login), dnsmasq on 127.0.0.2 reading ``/etc/resolv.dnsmasq`` and ``/run/dnsmasq.servers``,
chronyd with ``-x`` (never touches the clock), an OpenVPN client whose up/down scripts write
``/run/openvpn/vpn_status/active``, and the supervisor stand-in. Each daemon's pid and log live in
``/run/lab/`` where the stand-ins read them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.lab import faults, topology
from tests.lab.netns import Lab, in_ns, run
from tests.lab.pki import Pair, issue

STANDINS = Path(__file__).parent / "standins"
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
DNS_READY_TIMEOUT_S = 30.0
"""How long a device's DNS may take to answer for the NTP server's name before chronyd starts."""


@dataclass
class DeviceKeys:
    """Key material shared by all devices: orch's public key, the lab CA."""

    authorized_keys: Path
    ca: Pair


class LabDevice:
    """A built device; :meth:`sh` runs a command inside it (both namespaces)."""

    def __init__(self, lab: Lab, spec: topology.DeviceSpec, root: Path) -> None:
        self.lab = lab
        self.spec = spec
        self.root = root
        self.ns = ""
        self.anchor = 0
        self.host_key_line = ""

    def enter(self, argv: list[str]) -> list[str]:
        """``argv`` wrapped to run inside this device's network and mount namespaces."""
        return ["nsenter", "-t", str(self.anchor), "-m", "-n", "--", *argv]

    def sh(self, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``sh -c command`` inside the device; stdout and stderr kept apart."""
        return subprocess.run(
            self.enter(["sh", "-c", command]),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, unit: str, argv: list[str], log: Path | None = None) -> int:
        """Start a daemon inside the device and record its pid as ``/run/lab/<unit>.pid``."""
        pid = self.lab.spawn(self.enter(argv), log or self.root / "run" / "lab" / f"{unit}.log")
        (self.root / "run" / "lab" / f"{unit}.pid").write_text(f"{pid}\n")
        return pid

    @property
    def vpn_up(self) -> bool:
        return (self.root / "run" / "openvpn" / "vpn_status" / "active").exists()

    def build(self, router_ns: str, keys: DeviceKeys) -> LabDevice:
        """Create the namespaces, files and daemons of this device."""
        spec, flt = self.spec, faults.DeviceFaults.of(self.spec)
        self.ns = self.lab.add_namespace(f"d-{spec.name}")
        outside = f"olv{spec.number}"
        self.lab.veth(router_ns, outside, self.ns, "eth0")
        run(in_ns(router_ns, ["ip", "link", "set", outside, "master", "br0", "up"]))
        run(in_ns(self.ns, ["ip", "addr", "add", f"{spec.lan_ip}/24", "dev", "eth0"]))
        run(in_ns(self.ns, ["ip", "link", "set", "eth0", "up"]))
        run(in_ns(self.ns, ["ip", "route", "add", "default", "via", spec.site.lan_gateway]))
        self._write_files(keys, flt)
        self.anchor = self.lab.spawn(in_ns(self.ns, ["sleep", "1000000"]), self.root / "anchor.log")
        _wait_for(
            lambda: Path(f"/proc/{self.anchor}/exe").resolve().name == "sleep",
            10,
            f"{spec.name}: mount namespace anchor",
        )
        r = self.root
        run(
            [
                "nsenter",
                "-t",
                str(self.anchor),
                "-m",
                "--",
                "sh",
                "-c",
                f"mount -t overlay overlay -o lowerdir=/etc,upperdir={r}/etc-upper,workdir={r}/etc-work /etc"
                f" && mount --bind {r}/run /run && mount --bind {r}/mnt /mnt"
                f" && mount --bind {r}/bin /usr/local/bin",
            ]
        )
        self._start_daemons(keys, flt)
        return self

    def _write_files(self, keys: DeviceKeys, flt: faults.DeviceFaults) -> None:
        spec, r = self.spec, self.root
        for sub in (
            "etc-upper/ssl/certs",
            "etc-work",
            "run/lab",
            "run/openvpn",
            "run/chrony",
            "run/sshd",
            "mnt/boot",
            "bin",
            "vpn",
        ):
            (r / sub).mkdir(parents=True, exist_ok=True)
        (r / "run" / "chrony").chmod(0o750)
        etc = r / "etc-upper"
        (etc / "resolv.conf").write_text("nameserver 127.0.0.2\n")
        resolv_name = "resolv.dnsmasq.moved" if flt.dead_dns else "resolv.dnsmasq"
        (etc / resolv_name).write_text(f"nameserver {topology.DNS_IP}\n")
        (etc / "hostname").write_text(spec.short + "\n")
        shutil.copy(keys.ca.cert, etc / "ssl" / "certs" / "ca-certificates.crt")
        if flt.fake_time:
            (etc / "ld.so.preload").write_text(FAKETIME_LIB + "\n")
            (etc / "faketimerc").write_text(f"-{faults.FAKE_OFFSET_S}\n")
        (r / "run" / "lab" / "hostname").write_text(spec.short + "\n")
        (r / "run" / "dnsmasq.servers").write_text(
            f"server={topology.DEAD_DNS_IP}\n" if flt.dead_dns else ""
        )
        config = {
            "uuid": spec.uuid,
            "apiEndpoint": topology.ENDPOINTS["api"],
            "vpnEndpoint": "cloudlink.lab.test",
            "registryEndpoint": "registry.lab.test",
            "deltaEndpoint": topology.ENDPOINTS["delta"],
            "deviceApiKey": "lab-secret-" + spec.uuid[:12],
            "hostname": spec.short,
        }
        if flt.dead_dns:
            config["dnsServers"] = topology.DEAD_DNS_IP
        (r / "mnt" / "boot" / "config.json").write_text(json.dumps(config, separators=(",", ":")))
        for tool in ("systemctl", "journalctl"):
            shutil.copy(STANDINS / tool, r / "bin" / tool)
        (r / "bin" / "nslookup").symlink_to("/usr/bin/busybox")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(r / "ssh_host_ed25519_key")])
        self.host_key_line = " ".join((r / "ssh_host_ed25519_key.pub").read_text().split()[:2])
        shutil.copy(keys.authorized_keys, r / "authorized_keys")
        (r / "sshd_config").write_text(
            f"Port 22222\nHostKey {r}/ssh_host_ed25519_key\nPermitRootLogin prohibit-password\n"
            f"AuthorizedKeysFile {r}/authorized_keys\nStrictModes no\nUsePAM no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPidFile /run/sshd.pid\n"
            "AllowTcpForwarding yes\nPrintMotd no\nMaxStartups 100\nUseDNS no\n"
        )
        (r / "chrony.conf").write_text(
            "server ntp.lab.test iburst minpoll 0 maxpoll 2\npidfile /run/chrony/chronyd.pid\n"
        )
        pair = issue(keys.ca, r / "vpn", "client", spec.uuid, "clientAuth")
        (r / "vpn" / "up.sh").write_text(
            "#!/bin/sh\nmkdir -p /run/openvpn/vpn_status && touch /run/openvpn/vpn_status/active\n"
        )
        (r / "vpn" / "down.sh").write_text("#!/bin/sh\nrm -f /run/openvpn/vpn_status/active\n")
        for script in ("up.sh", "down.sh"):
            (r / "vpn" / script).chmod(0o755)
        self._vpn_pair = pair

    def _start_daemons(self, keys: DeviceKeys, flt: faults.DeviceFaults) -> None:
        r = self.root
        self.start("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", str(r / "sshd_config")])
        self.start(
            "dnsmasq",
            [
                "dnsmasq",
                "-k",
                "--conf-file=/dev/null",
                "--user=root",
                "--listen-address=127.0.0.2",
                "--bind-interfaces",
                "-r",
                "/etc/resolv.dnsmasq",
                "--servers-file=/run/dnsmasq.servers",
                "--log-facility=/run/lab/dnsmasq.log",
                "--pid-file=",
            ],
            log=r / "dnsmasq.out",
        )
        if flt.chronyd:
            if not flt.dead_dns:
                # chronyd retries a name it could not resolve at growing intervals: started
                # before DNS answers (a busy machine), it may not sync within the lab's settle time
                _wait_for(
                    lambda: self.sh("timeout 2 getent hosts ntp.lab.test").returncode == 0,
                    DNS_READY_TIMEOUT_S,
                    f"{self.spec.name}: its DNS to resolve ntp.lab.test",
                )
            self.start(
                "chronyd", ["chronyd", "-d", "-x", "-u", "root", "-f", str(r / "chrony.conf")]
            )
        supervisor = [
            sys.executable,
            str(STANDINS / "supervisor.py"),
            "--log",
            "/run/lab/balena-supervisor.log",
        ]
        self.start(
            "balena-supervisor",
            supervisor + (["--unhealthy"] if flt.supervisor_unhealthy else []),
            log=r / "supervisor.out",
        )
        if flt.openvpn:
            pair = self._vpn_pair
            self.start(
                "openvpn",
                [
                    "openvpn",
                    "--client",
                    "--dev",
                    "resin-vpn",
                    "--dev-type",
                    "tun",
                    "--proto",
                    "tcp-client",
                    "--remote",
                    "cloudlink.lab.test",
                    "443",
                    "--nobind",
                    "--ca",
                    str(keys.ca.cert),
                    "--cert",
                    str(pair.cert),
                    "--key",
                    str(pair.key),
                    "--remote-cert-tls",
                    "server",
                    "--script-security",
                    "2",
                    "--up",
                    str(r / "vpn" / "up.sh"),
                    "--down",
                    str(r / "vpn" / "down.sh"),
                    "--log",
                    "/run/lab/openvpn.log",
                    "--connect-retry",
                    "1",
                    "2",
                    "--resolv-retry",
                    "infinite",
                    "--disable-dco",
                    "--verb",
                    "3",
                ],
                log=r / "openvpn.out",
            )


def _wait_for(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"lab: timed out waiting for {what}")


wait_for = _wait_for
