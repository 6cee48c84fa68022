"""The simulated devices over real SSH: scenario outputs, gateway jumps, misbehaving devices.

Each test starts real asyncssh servers on 127.0.0.1 and talks to them with a real asyncssh
client that verifies host keys; the device side is a real /bin/sh running the fake commands.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time

import asyncssh
import pytest

from orchestrator.fleet.demo import DemoFleetSource, demo_specs, start_demo_fleet
from orchestrator.probes.base import Step
from orchestrator.probes.script import build_script, new_nonce, split_output
from orchestrator.sim import SimFleet, make_fleet, misbehaving_specs
from orchestrator.sim.render import config_secrets

API = "https://api.balena-cloud.com"
CLOUDLINK = "https://cloudlink.balena-cloud.com"
CONTRACT_SCRIPT = f"""
s() {{ echo "### $1"; }}
s epoch; date -u +%s
s iso; date -u '+%Y-%m-%dT%H:%M:%SZ'
s tracking; chronyc -n tracking; echo "rc=$?"
s sources; chronyc -n sources; echo "rc=$?"
s active; systemctl is-active chronyd.service dnsmasq.service openvpn.service; echo "rc=$?"
s show; systemctl show balena-supervisor.service -p ActiveState -p SubState -p NRestarts
s api; curl -sS -m 10 --connect-timeout 5 -w ' code=%{{http_code}}' {API}/ping 2>&1; echo " rc=$?"
s check; curl -sS -m 10 -D - -o /dev/null {API}/connectivity-check 2>&1; echo "rc=$?"
s cloudlink; curl -sS -m 10 --connect-timeout 5 -o /dev/null -w 'code=%{{http_code}}' {CLOUDLINK}/ping 2>&1; echo " rc=$?"
s registry; curl -sS -m 10 -o /dev/null -w 'code=%{{http_code}}' https://registry2.balena-cloud.com/v2/ 2>&1; echo " rc=$?"
s healthy; curl -sS -m 5 -w ' code=%{{http_code}}' http://127.0.0.1:48484/v1/healthy 2>&1; echo " rc=$?"
s openssl; openssl s_client -connect api.balena-cloud.com:443 -servername api.balena-cloud.com -showcerts </dev/null 2>&1; echo "rc=$?"
s nslookup; nslookup api.balena-cloud.com 2>&1; echo "rc=$?"
s route; ip -4 route show default
s neigh; ip neigh show
s openvpn; journalctl --no-pager -n 30 -u openvpn.service
s supervisor; journalctl --no-pager -n 20 -u balena-supervisor.service
s dnsmasq; journalctl --no-pager -n 20 -u dnsmasq.service
s chronyd; journalctl --no-pager -n 20 -u chronyd.service
s files; test -e "$R/etc/resolv.dnsmasq" && echo resolv=present || echo resolv=absent
test -e "$R/run/openvpn/vpn_status/active" && echo vpn=up || echo vpn=down
cat "$R/run/dnsmasq.servers"
s end
"""


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^### (\S+)\n", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


async def _connect(fleet: SimFleet, name: str, **kwargs: object) -> asyncssh.SSHClientConnection:
    device = next(d for d in fleet.devices if d.name == name)
    known = asyncssh.import_known_hosts("\n".join(fleet.known_hosts_lines()))
    return await asyncssh.connect(
        device.address,
        device.port,
        username="root",
        client_keys=[fleet.client_key],
        known_hosts=known,
        **kwargs,
    )


async def _run(fleet: SimFleet, name: str, script: str) -> asyncssh.SSHCompletedProcess:
    async with await _connect(fleet, name) as conn:
        return await conn.run('R="${ORCH_DEVICE_ROOT:-}"; sh -s', input=script, encoding="utf-8")


async def _contract_outputs() -> tuple[dict[str, dict[str, str]], float, float]:
    async with start_demo_fleet() as fleet:
        names = [d.name for d in DemoFleetSource(fleet).list_devices() if d.gateway is None]
        before = time.time()
        results = await asyncio.gather(
            *(_run(fleet, name, f'R="$ORCH_DEVICE_ROOT"\n{CONTRACT_SCRIPT}') for name in names)
        )
        after = time.time()
    return {n: _sections(str(r.stdout)) for n, r in zip(names, results, strict=True)}, before, after


@pytest.fixture(scope="module")
def demo() -> tuple[dict[str, dict[str, str]], float, float]:
    return asyncio.run(_contract_outputs())


def test_healthy_device_answers_like_a_healthy_balena_device(demo) -> None:
    out, before, after = demo
    healthy = out["demo-healthy"]
    assert before - 5 <= int(healthy["epoch"]) <= after + 5
    assert "Leap status     : Normal" in healthy["tracking"]
    assert re.search(r"^\^\* \S+\s+2\s+10\s+377", healthy["sources"], re.M)
    assert healthy["active"].split() == ["active", "active", "active", "rc=0"]
    assert healthy["api"].strip() == "OK code=200 rc=0"
    assert healthy["check"].startswith("HTTP/2 204\r\ndate: ")
    assert "code=200 rc=0" in healthy["cloudlink"] and "code=401 rc=0" in healthy["registry"]
    assert "OK code=200 rc=0" in healthy["healthy"]
    assert "Verify return code: 0 (ok)" in healthy["openssl"]
    assert "Initialization Sequence Completed" in healthy["openvpn"]
    assert "resolv=present" in healthy["files"] and "vpn=up" in healthy["files"]
    assert re.match(r"default via 192\.168\.\d+\.1 dev eth0", healthy["route"])


def test_clock_skewed_device_is_in_2017_and_fails_tls_as_not_yet_valid(demo) -> None:
    out, before, _ = demo
    skewed = out["demo-clock-skewed"]
    assert before - int(skewed["epoch"]) > 5 * 365 * 86400
    assert skewed["iso"].startswith("2017-03-23T12:0")
    assert skewed["tracking"].strip() == "506 Cannot talk to daemon\nrc=1"
    assert skewed["active"].split()[0] == "inactive" and "rc=3" in skewed["active"]
    assert "curl: (60) SSL certificate problem: certificate is not yet valid" in skewed["api"]
    assert "rc=60" in skewed["api"] and "rc=60" in skewed["cloudlink"]
    assert "Verify return code: 9 (certificate is not yet valid)" in skewed["openssl"]
    assert "VERIFY ERROR: depth=1, error=certificate is not yet valid" in skewed["openvpn"]
    assert '{"error":"certificate is not yet valid"}' in skewed["supervisor"]
    assert "chronyd exiting" in skewed["chronyd"]
    assert "vpn=down" in skewed["files"]


def test_ntp_blocked_device_hears_no_source_and_drifts(demo) -> None:
    out, before, after = demo
    blocked = out["demo-ntp-blocked"]
    offset = int(blocked["epoch"]) - (before + after) / 2
    assert -600 < offset < -60
    assert "Leap status     : Not synchronised" in blocked["tracking"]
    reaches = [line.split()[4] for line in blocked["sources"].splitlines() if line.startswith("^")]
    assert reaches and set(reaches) == {"0"}
    assert "No online NTP sources - forcing poll" in blocked["chronyd"]
    assert blocked["api"].strip() == "OK code=200 rc=0"


def test_dns_broken_device_resolves_nothing(demo) -> None:
    broken = demo[0]["demo-dns-broken"]
    assert "curl: (6) Could not resolve host: api.balena-cloud.com" in broken["api"]
    assert (
        "rc=6" in broken["api"] and "rc=6" in broken["cloudlink"] and "rc=6" in broken["registry"]
    )
    assert ";; connection timed out; no servers could be reached" in broken["nslookup"]
    assert "using nameserver 1.2.3.4#53" in broken["dnsmasq"]
    assert "failed to access /etc/resolv.dnsmasq" in broken["dnsmasq"]
    assert "getaddrinfo EAI_AGAIN api.balena-cloud.com" in broken["supervisor"]
    assert "resolv=absent" in broken["files"] and "server=1.2.3.4" in broken["files"]


def test_vpn_blocked_devices_time_out_on_cloudlink_but_reach_the_api(demo) -> None:
    out = demo[0]
    for name in ("demo-vpn-blocked", "demo-depot3-1", "demo-depot3-4"):
        device = out[name]
        assert "curl: (28) Connection timed out after 5001 milliseconds" in device["cloudlink"]
        assert "rc=28" in device["cloudlink"]
        assert device["api"].strip() == "OK code=200 rc=0"
        assert "failed: Connection timed out" in device["openvpn"]
        assert "VPN connection is not active." in device["supervisor"]
        assert "vpn=down" in device["files"]


def test_depot3_devices_share_public_address_and_lan() -> None:
    depot = [spec for spec in demo_specs() if spec.site == "depot-3"]
    assert len(depot) >= 4
    assert {spec.public_address for spec in depot} == {"203.0.113.7"}
    assert len({(spec.lan.gateway_ip, spec.lan.gateway_mac) for spec in depot}) == 1
    others = [spec for spec in demo_specs() if spec.site != "depot-3" and spec.site != "lab-8"]
    assert len({spec.public_address for spec in others}) == len(others)


def test_tls_intercepted_device_sees_a_foreign_issuer_with_a_correct_clock(demo) -> None:
    out, before, after = demo
    dpi = out["demo-tls-intercepted"]
    assert before - 5 <= int(dpi["epoch"]) <= after + 5
    assert "SSL certificate problem: unable to get local issuer certificate" in dpi["api"]
    assert "rc=60" in dpi["api"]
    assert (
        "depth=1 C = IE, ST = Dublin, L = Dublin, O = Royal College Of Surgeons In Ireland, OU = IT, CN = RCSI-TLS-PROTECT\nverify error:num=20:unable to get local issuer certificate"
        in dpi["openssl"]
    )
    assert "Bad encapsulated packet length" in dpi["openvpn"]


def test_supervisor_unhealthy_device_answers_500(demo) -> None:
    sick = demo[0]["demo-supervisor-unhealthy"]
    assert sick["healthy"].strip() == "Unhealthy code=500 rc=0"
    assert "NRestarts=3" in sick["show"]
    assert "Healthcheck failure" in sick["supervisor"]
    assert sick["api"].strip() == "OK code=200 rc=0"


def test_demo_fleet_has_every_scenario_named() -> None:
    names = {spec.name for spec in demo_specs()}
    for scenario in (
        "healthy",
        "clock-skewed",
        "ntp-blocked",
        "dns-broken",
        "vpn-blocked",
        "tls-intercepted",
        "supervisor-unhealthy",
        "gateway-only",
    ):
        assert f"demo-{scenario}" in names
    assert len(names) >= 10


def test_real_probe_script_runs_and_openssl_chain_is_real_pem() -> None:
    steps = [
        Step("clock", "date -u +%s"),
        Step("chrony", "chronyc -n tracking"),
        Step(
            "issuer",
            "openssl s_client -connect api.balena-cloud.com:443 -servername "
            "api.balena-cloud.com -showcerts </dev/null 2>&1 | openssl x509 -noout -issuer",
        ),
    ]

    async def scenario() -> dict[str, object]:
        async with start_demo_fleet() as fleet:
            nonce = new_nonce()
            script = build_script(steps, nonce, 30).decode()
            result = await _run(fleet, "demo-clock-skewed", script)
            return split_output(str(result.stdout).encode(), nonce, steps).steps

    found = asyncio.run(scenario())
    assert int(found["clock"].output) < 1500000000
    assert found["chrony"].exit_code == 1 and "506 Cannot talk to daemon" in found["chrony"].output
    assert found["issuer"].output.strip() == "issuer=C = US, O = Amazon, CN = Amazon RSA 2048 M02"


def test_gateway_only_device_is_reachable_through_its_gateway_only() -> None:
    async def scenario() -> tuple[str, type[BaseException] | None]:
        async with start_demo_fleet() as fleet:
            target = next(d for d in fleet.devices if d.name == "demo-gateway-only")
            gateway = next(d for d in fleet.devices if d.uuid == target.gateway)
            error: type[BaseException] | None = None
            try:
                await asyncio.wait_for(_connect(fleet, target.name), 5)
            except (OSError, asyncssh.Error) as exc:
                error = type(exc)
            hop = await _connect(fleet, gateway.name)
            async with hop, await _connect(fleet, target.name, tunnel=hop) as conn:
                result = await conn.run("hostname; sh -c 'ip neigh show'")
            return str(result.stdout), error

    output, error = asyncio.run(scenario())
    spec = next(s for s in demo_specs() if s.name == "demo-gateway-only")
    assert output.splitlines()[0] == spec.uuid[:7]
    assert error is not None and issubclass(error, socket.gaierror)


def test_config_json_holds_fake_secrets_for_leak_tests() -> None:
    async def scenario() -> tuple[dict[str, object], str]:
        async with start_demo_fleet() as fleet:
            root = fleet.device("demo-healthy").root
            config = json.loads((root / "mnt/boot/config.json").read_text())
            result = await _run(
                fleet,
                "demo-healthy",
                'grep -o \'"apiEndpoint":"[^"]*"\' "$ORCH_DEVICE_ROOT/mnt/boot/config.json"\n',
            )
            return config, str(result.stdout)

    config, grepped = asyncio.run(scenario())
    spec = next(s for s in demo_specs() if s.name == "demo-healthy")
    secrets = config_secrets(spec)
    assert config["apiKey"] == secrets[0] and config["deviceApiKey"] == secrets[1]
    assert grepped.strip() == '"apiEndpoint":"https://api.balena-cloud.com"'


def test_misbehaving_devices_hang_drop_flood_and_forge() -> None:
    steps = [Step("clock", "date -u +%s"), Step("units", "systemctl is-active chronyd")]

    async def scenario() -> dict[str, object]:
        async with SimFleet(misbehaving_specs()) as fleet:
            nonce = new_nonce()
            script = build_script(steps, nonce, 30)
            found: dict[str, object] = {}
            async with await _connect(fleet, "sim-hang") as conn:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(conn.run("sh -s", input=script, encoding=None), 1.5)
            async with await _connect(fleet, "sim-drop") as conn:
                proc = await conn.create_process("sh -s", encoding=None)
                proc.stdin.write(script)
                proc.stdin.write_eof()
                data = await asyncio.wait_for(proc.stdout.read(), 10)
                found["drop"] = data
            async with await _connect(fleet, "sim-flood") as conn:
                proc = await conn.create_process("sh -s", encoding=None)
                total = 0
                while chunk := await asyncio.wait_for(proc.stdout.read(1 << 20), 10):
                    total += len(chunk)
                found["flood"] = total
            async with await _connect(fleet, "sim-forge") as conn:
                result = await conn.run("sh -s", input=script, encoding=None)
                found["forge_raw"] = result.stdout
                found["forge"] = split_output(result.stdout, nonce, steps)
            found["nonce"] = nonce
            return found

    found = asyncio.run(scenario())
    assert 0 < len(found["drop"]) <= 200
    assert found["flood"] >= 50 * 1024 * 1024
    nonce = found["nonce"]
    assert f"@@ORCH:{nonce}:END:forged".encode() in found["forge_raw"]
    split = found["forge"]
    assert split.done
    assert split.steps["units"].output.rstrip().endswith("active")
    assert f"@@ORCH:{nonce}:DONE" in split.steps["clock"].output


def test_two_hundred_device_fleet_answers_quickly() -> None:
    specs = make_fleet(200, seed=7)
    assert len({s.uuid for s in specs}) == 200

    async def scenario() -> tuple[list[str], float]:
        async with SimFleet(specs) as fleet:
            limit = asyncio.Semaphore(50)
            started = time.monotonic()

            async def one(name: str) -> str:
                async with limit:
                    result = await _run(fleet, name, "date -u +%s; systemctl is-active dnsmasq\n")
                    return str(result.stdout)

            outputs = await asyncio.gather(*(one(s.name) for s in specs))
            return outputs, time.monotonic() - started

    outputs, took = asyncio.run(scenario())
    assert all(re.match(r"^\d{9,10}\n(active|inactive)\n$", out) for out in outputs)
    assert took < 60
