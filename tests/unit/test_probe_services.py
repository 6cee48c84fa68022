"""api, vpn, supervisor, registry and endpoints parsers on real curl output and seed journals,
and the probe registry (order, selection, parser failures)."""

import json
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError, UsageError
from orchestrator.models import StepOutput
from orchestrator.probes import api, container_registry, endpoints, supervisor, vpn
from orchestrator.probes.base import Endpoints, ProbeContext, make_probe
from orchestrator.probes.registry import PROBES, get_probes, parse_all, steps_for

FIX = Path(__file__).resolve().parents[1] / "fixtures"
CODES = json.loads((FIX / "real" / "exit_codes.json").read_text())


def real(name: str, step: str) -> StepOutput:
    return StepOutput(step, (FIX / "real" / f"{name}.txt").read_text(), exit_code=CODES.get(name))


def seed(name: str, step: str) -> StepOutput:
    return StepOutput(step, (FIX / "seed" / f"{name}.txt").read_text(), exit_code=0)


def values(observations):
    return {o.key: o.value for o in observations}


@pytest.mark.parametrize(
    ("fixture", "outcome", "body_ok"),
    [
        ("curl_ping_ok", "http", True),
        ("curl_exit6_resolver_refused", "resolve", False),
        ("curl_exit60_not_yet_valid", "tls_not_yet_valid", False),
    ],
)
def test_api_ping(fixture, outcome, body_ok):
    got = values(api.PROBE.parse({"api.ping": real(fixture, "api.ping")}, ProbeContext()))
    assert got["api.outcome"] == outcome
    assert got["api.body_ok"] is body_ok


def test_registry_401_is_reachable():
    got = values(
        container_registry.PROBE.parse(
            {"registry.v2": real("curl_registry_401", "registry.v2")}, ProbeContext()
        )
    )
    assert got == {"registry.outcome": "http", "registry.http_status": 401}


def test_supervisor_500_is_read_from_the_status_not_the_exit_code():
    steps = {
        "supervisor.unit": StepOutput("supervisor.unit", "active\n", exit_code=0),
        "supervisor.ping": real("curl_supervisor_ping_ok", "supervisor.ping"),
        "supervisor.healthy": real("curl_supervisor_healthy_500", "supervisor.healthy"),
        "supervisor.journal": seed("6.2_supervisor_eai_again", "supervisor.journal"),
    }
    got = values(supervisor.PROBE.parse(steps, ProbeContext()))
    assert got["supervisor.healthy_status"] == 500 and steps["supervisor.healthy"].exit_code == 0
    assert got["supervisor.ping_ok"] is True
    assert (
        got["log.supervisor.state_report_failure"] == "getaddrinfo EAI_AGAIN api.balena-cloud.com"
    )


def test_vpn_healthy_journal_and_marker():
    steps = {
        "vpn.openvpn": StepOutput("vpn.openvpn", "active\n", exit_code=0),
        "vpn.status": StepOutput("vpn.status", "active\n", exit_code=0),
        "vpn.journal": seed("6.3_openvpn_healthy", "vpn.journal"),
        "vpn.cloudlink": real("curl_ping_ok", "vpn.cloudlink"),
    }
    got = values(vpn.PROBE.parse(steps, ProbeContext()))
    assert got["vpn.openvpn_active"] is True and got["vpn.status_active"] is True
    assert got["log.vpn.connected"] == 1
    assert not [
        k
        for k in got
        if k.startswith("log.vpn.") and k != "log.vpn.connected" and k != "log.vpn.tls_verified"
    ]


def test_endpoints_drop_reject_resolve_and_customer():
    ends = Endpoints(customer=("mqtt.example.com:8883",))
    steps = {
        "endpoints.api": real("curl_ping_ok", "endpoints.api"),
        "endpoints.cloudlink": real("curl_exit28_connect_dropped", "endpoints.cloudlink"),
        "endpoints.registry": real("curl_exit7_reject_reset", "endpoints.registry"),
        "endpoints.delta": real("curl_exit6_resolver_refused", "endpoints.delta"),
        "endpoints.customer1": real("curl_telnet_open", "endpoints.customer1"),
    }
    got = {
        o.value["role"]: o.value["outcome"]
        for o in endpoints.PROBE.parse(steps, ProbeContext(endpoints=ends))
    }
    assert got == {
        "api": "open",
        "cloudlink": "connect_timeout",
        "registry": "refused",
        "delta": "resolve",
        "customer": "open",
    }
    assert "telnet://mqtt.example.com:8883" in steps_for([endpoints.PROBE], ends)[-1].command


def test_malformed_customer_endpoint_is_a_config_error():
    with pytest.raises(ConfigError, match="host:port"):
        endpoints.PROBE.steps_for(Endpoints(customer=("mqtt.example.com; rm -rf /",)))


def test_registry_order_and_selection():
    assert PROBES[0].name == "time" and PROBES[0].steps[0].name == "time.date"
    assert [p.name for p in get_probes(["dns", "time"])] == ["time", "dns"]
    with pytest.raises(UsageError, match="valid|choose from"):
        get_probes(["nope"])
    names = [s.name for s in steps_for(PROBES, Endpoints())]
    assert len(names) == len(set(names))


def test_a_raising_parser_becomes_an_observation():
    def broken(steps, ctx):
        raise ValueError("boom")

    probe = make_probe("broken", "always fails", lambda e: (), broken)
    got = parse_all(
        [probe, api.PROBE], {"api.ping": real("curl_ping_ok", "api.ping")}, ProbeContext()
    )
    assert got[0].key == "probe.error" and "boom" in got[0].evidence[0]
    assert any(o.key == "api.outcome" for o in got)
