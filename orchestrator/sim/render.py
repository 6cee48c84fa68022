"""Write a simulated device's root once: the files probes read and the state the fakes read.

Layout under the device root (``ORCH_DEVICE_ROOT``)::

    mnt/boot/config.json            fake but realistic, with fake secret-looking keys
    etc/resolv.dnsmasq              absent when the scenario moved it away
    run/dnsmasq.servers             upstreams dnsmasq got from config.json / defaults
    run/openvpn/vpn_status/active   present only while the VPN is up
    home/root/                      HOME of SSH sessions
    .sim/env                        shell variables the fake commands source
    .sim/journal/<unit>.service     rendered journal (first line is journalctl's header)
    .sim/ip_route, ip_addr, ip_neigh, s_client   pre-rendered command output
    .sim/ip_route6                  `ip -6 route show default` (empty without IPv6)

The X.509 chains are real certificates (generated once per process), so `openssl x509` works on
what the fake `openssl s_client -showcerts` prints.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shlex
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from orchestrator.sim import model
from orchestrator.sim.model import BALENA_HOSTS, SimDeviceSpec

HOST_IPS = {
    BALENA_HOSTS["api"]: "34.226.166.12",
    BALENA_HOSTS["cloudlink"]: "3.225.166.106",
    BALENA_HOSTS["registry"]: "52.4.252.97",
    BALENA_HOSTS["delta"]: "54.157.73.143",
    model.NTP_POOL_HOST: "198.199.14.101",
}
"""Answers the simulated DNS gives (data only: nothing here is ever contacted)."""
UNITS = ("chronyd", "dnsmasq", "openvpn", "os-config", "balena-supervisor")
DROP_DELAY_S = 0.2
"""How long a fake waits before reporting a timeout on a dropped flow (the wording still says
the nominal timeout: simulated devices compress waiting so a demo run stays quick)."""
_OIDS = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
}


@dataclass(frozen=True)
class ChainCert:
    """One certificate as `openssl s_client -showcerts` prints it."""

    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    pem: str


def _name(text: str) -> x509.Name:
    """An X.509 name from OpenSSL's one-line form `C = US, O = X, CN = Y`."""
    attributes = []
    for part in text.split(", "):
        key, value = part.split(" = ", 1)
        attributes.append(x509.NameAttribute(_OIDS[key], value))
    return x509.Name(attributes)


def _issue(
    subject: str,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
    is_ca: bool,
) -> tuple[ChainCert, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return ChainCert(subject, issuer, not_before, not_after, pem), key


@dataclass(frozen=True)
class Chains:
    """The chain a device sees for balena hosts: genuine, and through a DPI box."""

    genuine: tuple[ChainCert, ...]
    """Leaf first; the last element is the trusted root (not sent by the server)."""
    dpi: tuple[ChainCert, ...]
    """Leaf first; the intermediate's root is unknown to the device."""


@lru_cache(maxsize=4)
def chains(dpi_issuer: str, day: int) -> Chains:
    """Both chains, valid around day number ``day`` (days since the epoch)."""
    now = dt.datetime.fromtimestamp(day * 86400, tz=dt.timezone.utc)
    leaf_from = now - dt.timedelta(seconds=model.CERT_NOT_BEFORE_AGE_S)
    leaf_to = now + dt.timedelta(seconds=model.CERT_NOT_AFTER_LEFT_S)
    root_name = "C = US, O = Amazon, CN = Amazon Root CA 1"
    mid_name = "C = US, O = Amazon, CN = Amazon RSA 2048 M02"
    root, root_key = _issue(
        root_name,
        root_name,
        None,
        dt.datetime(2015, 5, 26, tzinfo=dt.timezone.utc),
        dt.datetime(2038, 1, 17, tzinfo=dt.timezone.utc),
        True,
    )
    mid, mid_key = _issue(
        mid_name,
        root_name,
        root_key,
        dt.datetime(2022, 8, 23, 22, 25, 30, tzinfo=dt.timezone.utc),
        dt.datetime(2030, 8, 23, 22, 25, 30, tzinfo=dt.timezone.utc),
        True,
    )
    leaf, _ = _issue("CN = *.balena-cloud.com", mid_name, mid_key, leaf_from, leaf_to, False)
    dpi_root_name = dpi_issuer.rsplit("CN = ", 1)[0] + "CN = DPI-ROOT-CA"
    dpi_mid, dpi_key = _issue(
        dpi_issuer,
        dpi_root_name,
        None,
        now - dt.timedelta(days=700),
        now + dt.timedelta(days=1100),
        True,
    )
    dpi_leaf, _ = _issue("CN = balena.io", dpi_issuer, dpi_key, leaf_from, leaf_to, False)
    return Chains(genuine=(leaf, mid, root), dpi=(dpi_leaf, dpi_mid))


def _openssl_date(when: dt.datetime) -> str:
    return when.strftime("%b %e %H:%M:%S %Y GMT")


def _cert_block(index: int, cert: ChainCert) -> str:
    return (
        f" {index} s:{cert.subject}\n   i:{cert.issuer}\n"
        "   a:PKEY: id-ecPublicKey, 256 (bit); sigalg: ecdsa-with-SHA256\n"
        f"   v:NotBefore: {_openssl_date(cert.not_before)}; "
        f"NotAfter: {_openssl_date(cert.not_after)}\n{cert.pem}"
    )


def s_client_text(dpi: bool, found: Chains, device_now: dt.datetime) -> str:
    """What `openssl s_client -showcerts </dev/null 2>&1` prints for a balena host."""
    if dpi:
        sent = found.dpi
        verify = [(sent[1], 20), (sent[0], 0)]
    else:
        sent = found.genuine[:2]
        verify = []
        for cert in reversed(found.genuine):
            code = 9 if device_now < cert.not_before else 10 if device_now > cert.not_after else 0
            verify.append((cert, code))
    reasons = {
        0: "ok",
        9: "certificate is not yet valid",
        10: "certificate has expired",
        20: "unable to get local issuer certificate",
    }
    lines = []
    worst = 0
    for position, (depth_cert, code) in enumerate(verify):
        depth = len(verify) - 1 - position
        lines.append(f"depth={depth} {depth_cert.subject}")
        if code:
            worst = worst or code
            lines.append(f"verify error:num={code}:{reasons[code]}")
            if code == 9:
                lines.append(f"notBefore={_openssl_date(depth_cert.not_before)}")
            if code == 10:
                lines.append(f"notAfter={_openssl_date(depth_cert.not_after)}")
        lines.append("verify return:1")
    lines += ["CONNECTED(00000003)", "---", "Certificate chain"]
    text = "\n".join(lines) + "\n" + "".join(_cert_block(i, c) for i, c in enumerate(sent))
    verification = "Verification: OK" if not worst else f"Verification error: {reasons[worst]}"
    text += (
        f"---\nServer certificate\nsubject={sent[0].subject}\nissuer={sent[0].issuer}\n---\n"
        "No client certificate CA names sent\nPeer signing digest: SHA256\n"
        "Peer signature type: ECDSA\nServer Temp Key: X25519, 253 bits\n---\n"
        f"SSL handshake has read {1400 + 700 * len(sent)} bytes and written 394 bytes\n"
        f"{verification}\n---\nNew, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384\n"
        "Server public key is 256 bit\nSecure Renegotiation IS NOT supported\n"
        "Compression: NONE\nExpansion: NONE\nNo ALPN negotiated\nEarly data was not sent\n"
        f"Verify return code: {worst} ({reasons[worst]})\n---\nDONE\n"
    )
    return text


def _secret(spec: SimDeviceSpec, kind: str) -> str:
    return hashlib.sha256(f"orch-sim-secret:{kind}:{spec.uuid}".encode()).hexdigest()[:32]


def config_secrets(spec: SimDeviceSpec) -> tuple[str, ...]:
    """The fake secret values in the device's config.json (tests assert they never leak)."""
    return (_secret(spec, "apiKey"), _secret(spec, "deviceApiKey"), _secret(spec, "wifi"))


def config_json(spec: SimDeviceSpec) -> dict[str, object]:
    """A realistic balenaOS config.json for the device (its secrets are fake)."""
    api_key, device_api_key, _ = config_secrets(spec)
    config: dict[str, object] = {
        "applicationId": 1958513,
        "applicationName": "demofleet",
        "deviceType": "raspberrypi4-64",
        "userId": 123456,
        "username": "demo_user",
        "appUpdatePollInterval": 900000,
        "listenPort": 48484,
        "vpnPort": 443,
        "apiEndpoint": f"https://{BALENA_HOSTS['api']}",
        "vpnEndpoint": BALENA_HOSTS["cloudlink"],
        "registryEndpoint": BALENA_HOSTS["registry"],
        "deltaEndpoint": f"https://{BALENA_HOSTS['delta']}",
        "mixpanelToken": "9ef939ea64cb6cd8bbc96af72345d70d",
        "apiKey": api_key,
        "uuid": spec.uuid,
        "deviceApiKey": device_api_key,
        "deviceId": int(spec.uuid[:6], 16),
        "registered_at": 1660900000000,
        "persistentLogging": False,
        "developmentMode": True,
        "os": {"sshKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOrchSimDemoKeyOnly demo@orch"]},
    }
    if spec.config_dns_servers is not None:
        config["dnsServers"] = spec.config_dns_servers
    return config


def _ovpn_time(when: dt.datetime) -> str:
    return f"{when:%a %b} {when.day:2d} {when:%H:%M:%S %Y}"


def render_journal(spec: SimDeviceSpec, unit: str, variant: str, now: float) -> str:
    """journalctl's view of ``unit``: a header line, then classic short-format lines."""
    template = resources.files("orchestrator.sim").joinpath(f"data/{unit}.{variant}.journal")
    tls_error = (
        "certificate has expired"
        if model.tls_problem(spec) == "expired"
        else ("certificate is not yet valid")
    )
    values = {
        "cloudlink_ip": HOST_IPS[BALENA_HOSTS["cloudlink"]],
        "cloudlink_host": BALENA_HOSTS["cloudlink"],
        "api_host": BALENA_HOSTS["api"],
        "gw_ip": spec.lan.gateway_ip,
        "gw_mac": spec.lan.gateway_mac,
        "dns": (spec.config_dns_servers or "8.8.8.8").split()[0],
        "tls_error": tls_error,
    }
    stamps: list[float] = []
    lines = []
    for raw in template.read_text().splitlines():
        if not raw.strip():
            continue
        when_text, rest = raw.split(" ", 1)
        base = now + spec.clock_offset_s if when_text[0] == "D" else now
        moment = base + float(when_text[1:])
        stamps.append(moment)
        when = dt.datetime.fromtimestamp(moment, tz=dt.timezone.utc)
        values["ovpn"] = _ovpn_time(when)
        values["iso"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{when:%b %d %H:%M:%S} {spec.hostname} {rest.format(**values)}")
    first = dt.datetime.fromtimestamp(min(stamps), tz=dt.timezone.utc)
    last = dt.datetime.fromtimestamp(max(stamps), tz=dt.timezone.utc)
    header = (
        f"-- Journal begins at {first:%a %Y-%m-%d %H:%M:%S} UTC, "
        f"ends at {last:%a %Y-%m-%d %H:%M:%S} UTC. --"
    )
    return "\n".join([header, *lines]) + "\n"


def _ip_outputs(spec: SimDeviceSpec, vpn: bool) -> dict[str, str]:
    lan = spec.lan
    base = lan.gateway_ip.rsplit(".", 1)[0]
    dev = "eth0" if spec.wifi_signal is None else "wlan0"
    route = f"default via {lan.gateway_ip} dev {dev} proto dhcp src {lan.device_ip} metric 100\n"
    addr = (
        "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
        f"2: {dev}    inet {lan.device_ip}/{lan.prefix_len} brd {base}.255 scope global dynamic "
        f"noprefixroute {dev}\\       valid_lft 85813sec preferred_lft 85813sec\n"
        "4: supervisor0    inet 10.114.104.1/25 brd 10.114.104.127 scope global supervisor0\\"
        "       valid_lft forever preferred_lft forever\n"
        "5: balena0    inet 10.114.101.1/24 brd 10.114.101.255 scope global balena0\\"
        "       valid_lft forever preferred_lft forever\n"
    )
    if vpn:
        addr += (
            "6: resin-vpn    inet 10.242.111.185 peer 52.4.252.97/32 scope global resin-vpn\\"
            "       valid_lft forever preferred_lft forever\n"
        )
    neigh = f"{lan.gateway_ip} dev {dev} lladdr {lan.gateway_mac} REACHABLE\n"
    route6 = (
        ""
        if spec.ipv6 is None
        else f"default via fe80::1 dev {dev} proto ra metric 1024 pref medium\n"
    )
    return {"ip_route": route, "ip_addr": addr, "ip_neigh": neigh, "ip_route6": route6}


def _unit_states(spec: SimDeviceSpec, variants: dict[str, str]) -> dict[str, str]:
    return {
        "chronyd": "active running 0" if spec.chronyd_running else "inactive dead 0",
        "dnsmasq": "active running 0" if spec.dnsmasq_running else "inactive dead 0",
        "openvpn": "active running 0",
        "os_config": "active exited 0" if variants["os-config"] == "ok" else "active running 0",
        "supervisor": "active running 3" if spec.supervisor_status != 200 else "active running 0",
        "engine": "active running 0",
    }


def _env(spec: SimDeviceSpec, variants: dict[str, str]) -> str:
    upstreams = " ".join(f"{ip}={int(ok)}" for ip, ok in spec.dns_upstreams)
    rules = " ".join(f"{'ANY' if h == '*' else h}={p}={a}" for h, p, a in spec.rules)
    values = {
        "SIM_OFFSET": str(spec.clock_offset_s),
        "SIM_HOST": spec.hostname,
        "SIM_CHRONYD": str(int(spec.chronyd_running)),
        "SIM_NTP": str(int(model.ntp_works(spec))),
        "SIM_DNSMASQ": str(int(spec.dnsmasq_running)),
        "SIM_DNS": str(int(model.dns_works(spec))),
        "SIM_UPSTREAMS": upstreams,
        "SIM_RULES": rules,
        "SIM_TLS": model.tls_problem(spec) or "ok",
        "SIM_SUP": str(spec.supervisor_status),
        "SIM_VPN": str(int(model.vpn_up(spec))),
        "SIM_API_HOST": BALENA_HOSTS["api"],
        "SIM_CLOUDLINK_HOST": BALENA_HOSTS["cloudlink"],
        "SIM_REGISTRY_HOST": BALENA_HOSTS["registry"],
        "SIM_DELTA_HOST": BALENA_HOSTS["delta"],
        "SIM_HOSTS": " ".join(f"{h}={ip}" for h, ip in HOST_IPS.items()),
        "SIM_DROP_DELAY": str(DROP_DELAY_S),
        "SIM_FORGE": "1" if spec.behaviour == "forge" else "0",
        "SIM_WIFI": "" if spec.wifi_signal is None else str(spec.wifi_signal),
        "SIM_LOSS": str(spec.gateway_loss_pct),
        "SIM_IPV6": spec.ipv6 or "none",
    }
    for unit, state in _unit_states(spec, variants).items():
        values[f"SIM_U_{unit}"] = state
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in values.items())


def render_device(spec: SimDeviceSpec, root: Path, now: float | None = None) -> Path:
    """Create ``root`` for ``spec`` and return its state dir (``root/.sim``)."""
    now = time.time() if now is None else now
    variants = model.journal_variants(spec)
    vpn = model.vpn_up(spec)
    state = root / ".sim"
    for sub in ("mnt/boot", "etc", "run/openvpn/vpn_status", "home/root", ".sim/journal"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "mnt/boot/config.json").write_text(json.dumps(config_json(spec), separators=(",", ":")))
    servers = (spec.config_dns_servers or "8.8.8.8").split()
    (root / "run/dnsmasq.servers").write_text("".join(f"server={s}\n" for s in servers))
    if spec.resolver_file_present:
        others = [ip for ip, _ in spec.dns_upstreams if ip not in servers] or [spec.lan.gateway_ip]
        (root / "etc/resolv.dnsmasq").write_text("".join(f"nameserver {ip}\n" for ip in others))
    if vpn:
        (root / "run/openvpn/vpn_status/active").write_text("")
    for unit in UNITS:
        text = render_journal(spec, unit, variants[unit], now)
        (state / "journal" / f"{unit}.service").write_text(text)
    for name, text in _ip_outputs(spec, vpn).items():
        (state / name).write_text(text)
    found = chains(
        model.DPI_ISSUER_RCSI if not spec.dpi_issuer else spec.dpi_issuer, int(now // 86400)
    )
    device_now = dt.datetime.fromtimestamp(now + spec.clock_offset_s, tz=dt.timezone.utc)
    dpi = model.tls_problem(spec) == "dpi"
    (state / "s_client").write_text(s_client_text(dpi, found, device_now))
    (state / "env").write_text(_env(spec, variants))
    return state
