"""The state of one simulated balenaOS device, and what follows from it.

A ``SimDeviceSpec`` holds the causes (clock offset, daemons running, DNS upstreams, firewall
rules, a TLS-intercepting middlebox, supervisor health); the functions below derive the
consequences (can it resolve names, is the VPN up, what does TLS to a balena host say) so every
fake command and every journal tells the same story. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field, replace

BALENA_HOSTS = {
    "api": "api.balena-cloud.com",
    "cloudlink": "cloudlink.balena-cloud.com",
    "registry": "registry2.balena-cloud.com",
    "delta": "delta.balena-cloud.com",
}
NTP_POOL_HOST = "0.resinio.pool.ntp.org"
DPI_ISSUER_RCSI = (
    "C = IE, ST = Dublin, L = Dublin, O = Royal College Of Surgeons In Ireland, OU = IT, "
    "CN = RCSI-TLS-PROTECT"
)
CLOCK_2017_EPOCH = 1490270400
"""2017-03-23T12:00:00Z, the date the seed sets a device back to."""
CERT_NOT_BEFORE_AGE_S = 30 * 86400
"""The balena leaf certificates became valid this long before real time."""
CERT_NOT_AFTER_LEFT_S = 300 * 86400
"""...and stay valid this long after real time."""
LAN_ONLY_SUFFIX = ".lan%sim"
"""Address suffix of devices only their gateway can reach. The `%` makes the C resolver reject
the name locally, so a direct connection fails at once and no DNS query leaves the machine."""
BEHAVIOURS = ("hang", "drop", "flood", "forge")

Action = str
"""A firewall verdict for a (host, port): `ok`, `drop` (silently discarded) or `refuse`."""


@dataclass(frozen=True)
class Lan:
    """The local network a device sits on (data only: never contacted)."""

    subnet: str = "192.168.1.0/24"
    gateway_ip: str = "192.168.1.1"
    gateway_mac: str = "dc:a6:32:00:00:01"
    device_ip: str = "192.168.1.20"

    @property
    def prefix_len(self) -> int:
        """The subnet's prefix length (24 for a /24)."""
        return int(self.subnet.split("/")[1])


@dataclass(frozen=True)
class SimDeviceSpec:
    """Everything that decides how one simulated device behaves."""

    name: str
    uuid: str
    scenario: str = "healthy"
    site: str | None = None
    labels: tuple[str, ...] = ()
    public_address: str = "198.51.100.10"
    lan: Lan = field(default_factory=Lan)
    clock_offset_s: int = 0
    """Device clock minus real time, in seconds."""
    chronyd_running: bool = True
    ntp_reachable: bool = True
    dnsmasq_running: bool = True
    resolver_file_present: bool = True
    dns_upstreams: tuple[tuple[str, bool], ...] = (("8.8.8.8", True), ("192.168.1.1", True))
    """(upstream IP, answers) in the order dnsmasq uses them."""
    config_dns_servers: str | None = None
    """The `dnsServers` value in config.json, when set."""
    rules: tuple[tuple[str, int, Action], ...] = ()
    """Firewall rules: (host or `*`, port, action); the first match wins, default `ok`."""
    dpi_issuer: str | None = None
    """Issuer of the certificate a TLS-intercepting middlebox presents for every 443 host."""
    supervisor_status: int = 200
    vpn_connected: bool | None = None
    """None: derive from clock, DNS, firewall and DPI."""
    is_gateway: bool = False
    lan_only: bool = False
    """Reachable only through ``gateway`` (no address that resolves outside it)."""
    gateway: str | None = None
    """Name of the device to jump through."""
    behaviour: str | None = None
    """Transport test behaviour: `hang`, `drop`, `flood` or `forge` (see server.py)."""
    wifi_signal: int | None = None
    """Signal (percent) of the Wi-Fi access point the default route uses; None: wired (eth0)."""
    gateway_loss_pct: int = 0
    """Share of pings to the default gateway that get no answer."""
    ipv6: str | None = None
    """IPv6: None (no IPv6 default route), `ok`, or `broken` (route present, traffic lost)."""

    @property
    def hostname(self) -> str:
        """The short uuid balenaOS uses as hostname (journal lines carry it)."""
        return self.uuid[:7]

    @property
    def lan_address(self) -> str:
        """The name a lan-only device answers to inside its gateway."""
        return f"{self.name}{LAN_ONLY_SUFFIX}"


def make_uuid(*parts: object) -> str:
    """A stable 32-hex uuid from arbitrary parts."""
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:32]


def firewall(spec: SimDeviceSpec, host: str, port: int) -> Action:
    """The verdict for a TCP/UDP flow from the device to ``host:port``."""
    for rule_host, rule_port, action in spec.rules:
        if rule_port == port and rule_host in (host, "*"):
            return action
    return "ok"


def ntp_works(spec: SimDeviceSpec) -> bool:
    """Whether chronyd hears from its sources."""
    return spec.ntp_reachable and firewall(spec, NTP_POOL_HOST, 123) == "ok"


def upstream_works(spec: SimDeviceSpec, server: str) -> bool:
    """Whether a DNS query sent straight to ``server`` gets an answer."""
    if firewall(spec, server, 53) != "ok":
        return False
    for upstream, works in spec.dns_upstreams:
        if upstream == server:
            return works
    return True


def dns_works(spec: SimDeviceSpec) -> bool:
    """Whether names resolve through the local dnsmasq (127.0.0.2)."""
    if not spec.dnsmasq_running:
        return False
    return any(upstream_works(spec, server) for server, _ in spec.dns_upstreams)


def tls_problem(spec: SimDeviceSpec) -> str | None:
    """Why TLS to a balena host fails: `notyet`, `expired`, `dpi`, or None when it verifies."""
    if spec.clock_offset_s < -CERT_NOT_BEFORE_AGE_S:
        return "notyet"
    if spec.clock_offset_s > CERT_NOT_AFTER_LEFT_S:
        return "expired"
    if spec.dpi_issuer:
        return "dpi"
    return None


def vpn_up(spec: SimDeviceSpec) -> bool:
    """Whether openvpn completed its connection to cloudlink."""
    if spec.vpn_connected is not None:
        return spec.vpn_connected
    return (
        dns_works(spec)
        and firewall(spec, BALENA_HOSTS["cloudlink"], 443) == "ok"
        and tls_problem(spec) is None
    )


def api_works(spec: SimDeviceSpec) -> bool:
    """Whether HTTPS to the API succeeds."""
    return (
        dns_works(spec)
        and firewall(spec, BALENA_HOSTS["api"], 443) == "ok"
        and tls_problem(spec) is None
    )


def vpn_failure(spec: SimDeviceSpec) -> str | None:
    """The first reason openvpn fails: `dns`, `tls`, `dpi`, `drop`, `refuse`, `down`, or None."""
    if vpn_up(spec):
        return None
    if not dns_works(spec):
        return "dns"
    problem = tls_problem(spec)
    if problem in ("notyet", "expired"):
        return "tls"
    action = firewall(spec, BALENA_HOSTS["cloudlink"], 443)
    if action != "ok":
        return action
    if problem == "dpi":
        return "dpi"
    return "down"


def lan_for(index: int, gateway_mac_seed: str = "") -> Lan:
    """A distinct private /24 LAN for ``index`` (data only)."""
    third = index % 250 + 2
    second = 168 if index < 250 else 16 + (index // 250) % 15
    first = 192 if index < 250 else 172
    base = f"{first}.{second}.{third}"
    mac_tail = hashlib.sha256(f"{base}{gateway_mac_seed}".encode()).hexdigest()[:6]
    mac = "dc:a6:32:" + ":".join(mac_tail[i : i + 2] for i in (0, 2, 4))
    return Lan(f"{base}.0/24", f"{base}.1", mac, f"{base}.20")


def with_host_ip(lan: Lan, host: int) -> Lan:
    """The same LAN seen from another device (a different host address)."""
    base = lan.gateway_ip.rsplit(".", 1)[0]
    return replace(lan, device_ip=f"{base}.{host}")


SCENARIOS = (
    "healthy",
    "clock-skewed",
    "ntp-blocked",
    "dns-broken",
    "vpn-blocked",
    "tls-intercepted",
    "supervisor-unhealthy",
)


def apply_scenario(spec: SimDeviceSpec, scenario: str, now: float | None = None) -> SimDeviceSpec:
    """``spec`` changed into one of ``SCENARIOS`` (the seed's failure modes).

    ``now`` (default: the real clock) anchors the clock-skewed device at 2017-03-23 12:00 UTC.
    """
    if scenario == "healthy":
        return replace(spec, scenario=scenario)
    if scenario == "clock-skewed":
        offset = CLOCK_2017_EPOCH - int(time.time() if now is None else now)
        return replace(spec, scenario=scenario, clock_offset_s=offset, chronyd_running=False)
    if scenario == "ntp-blocked":
        return replace(
            spec,
            scenario=scenario,
            ntp_reachable=False,
            clock_offset_s=-423,
            rules=spec.rules + (("*", 123, "drop"),),
        )
    if scenario == "dns-broken":
        return replace(
            spec,
            scenario=scenario,
            resolver_file_present=False,
            dns_upstreams=(("1.2.3.4", False),),
            config_dns_servers="1.2.3.4",
        )
    if scenario == "vpn-blocked":
        return replace(
            spec, scenario=scenario, rules=spec.rules + ((BALENA_HOSTS["cloudlink"], 443, "drop"),)
        )
    if scenario == "tls-intercepted":
        return replace(spec, scenario=scenario, dpi_issuer=DPI_ISSUER_RCSI)
    if scenario == "supervisor-unhealthy":
        return replace(spec, scenario=scenario, supervisor_status=500)
    raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")


def misbehaving_specs(prefix: str = "sim") -> list[SimDeviceSpec]:
    """One device per transport test behaviour: `<prefix>-hang`, `-drop`, `-flood`, `-forge`."""
    return [
        SimDeviceSpec(
            name=f"{prefix}-{behaviour}",
            uuid=make_uuid(prefix, behaviour),
            scenario="healthy",
            public_address=f"192.0.2.{200 + index}",
            lan=lan_for(200 + index),
            behaviour=behaviour,
        )
        for index, behaviour in enumerate(BEHAVIOURS)
    ]


def make_fleet(n: int, seed: int = 0) -> list[SimDeviceSpec]:
    """A large mixed fleet for benchmarks: mostly healthy, every scenario present, sites of 20.

    Every fifth site is behind a firewall that drops TCP 443 to cloudlink, so network-wide
    patterns show up at scale. Deterministic for a given ``seed``.
    """
    rng = random.Random(seed)
    weights = [60, 6, 6, 6, 6, 6, 6]
    specs: list[SimDeviceSpec] = []
    for index in range(n):
        site_index = index // 20
        site = f"site-{site_index:04d}"
        lan = with_host_ip(lan_for(site_index, str(seed)), 20 + index % 20)
        public = (
            f"203.0.113.{site_index % 250 + 1}"
            if site_index % 2
            else (f"198.51.100.{site_index % 250 + 1}")
        )
        scenario = rng.choices(SCENARIOS, weights)[0]
        spec = SimDeviceSpec(
            name=f"sim-{index:05d}-{scenario}",
            uuid=make_uuid("fleet", seed, index),
            site=site,
            public_address=public,
            lan=lan,
            dns_upstreams=(("8.8.8.8", True), (lan.gateway_ip, True)),
        )
        spec = apply_scenario(spec, scenario)
        if site_index % 5 == 4 and scenario == "healthy":
            spec = replace(
                spec,
                name=f"sim-{index:05d}-site-vpn-blocked",
                scenario="site-vpn-blocked",
                rules=((BALENA_HOSTS["cloudlink"], 443, "drop"),),
            )
        specs.append(spec)
    return specs


def journal_variants(spec: SimDeviceSpec) -> dict[str, str]:
    """Which journal template (`data/<unit>.<variant>.journal`) tells each unit's story."""
    tls = tls_problem(spec)
    clock_bad = tls in ("notyet", "expired")
    if not spec.chronyd_running:
        chronyd = "stopped"
    elif not ntp_works(spec):
        chronyd = "ntp-blocked"
    else:
        chronyd = "healthy"
    if not spec.dnsmasq_running:
        dnsmasq = "stopped"
    elif not dns_works(spec) or not spec.resolver_file_present:
        dnsmasq = "broken"
    else:
        dnsmasq = "healthy"
    vpn = {None: "connected", "down": "drop"}.get(vpn_failure(spec), vpn_failure(spec) or "")
    api_action = firewall(spec, BALENA_HOSTS["api"], 443)
    if not dns_works(spec):
        os_config = supervisor = "dns"
    elif clock_bad:
        os_config = supervisor = "tls"
    elif api_action != "ok":
        os_config, supervisor = "drop", "vpn"
    elif tls == "dpi":
        os_config = supervisor = "dpi"
    else:
        os_config = "ok"
        supervisor = "vpn" if vpn != "connected" else "healthy"
    if spec.supervisor_status != 200:
        supervisor = "unhealthy"
    return {
        "chronyd": chronyd,
        "dnsmasq": dnsmasq,
        "openvpn": vpn,
        "os-config": os_config,
        "balena-supervisor": supervisor,
    }
