"""vpn: OpenVPN state, its journal, Cloudlink reachability, and the os-config journal.

Observations: ``vpn.openvpn_active`` (bool), ``vpn.status_active`` (bool, the marker
``/run/openvpn/vpn_status/active``), ``vpn.cloudlink_outcome`` (curl_result outcome of
``<cloudlink>/ping``), ``log.vpn.*`` and ``log.os_config.*`` (only problems after the last
success count: see diagnosis.signatures).
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.diagnosis.signatures import scan
from orchestrator.models import Observation, StepOutput
from orchestrator.probes.base import Endpoints, ProbeContext, Step, make_probe, step_output
from orchestrator.probes.curl_result import curl_command, parse_curl
from orchestrator.probes.journal import journal_step

NAME = "vpn"


def build_steps(endpoints: Endpoints) -> tuple[Step, ...]:
    """Unit state, status marker, journals and a Cloudlink ping."""
    return (
        Step("vpn.openvpn", "systemctl is-active openvpn.service", timeout_s=5),
        Step(
            "vpn.status",
            'if test -e "$R/run/openvpn/vpn_status/active"; then echo active; else echo inactive; fi',
            timeout_s=5,
        ),
        journal_step("vpn.journal", "openvpn.service"),
        Step(
            "vpn.cloudlink", curl_command(endpoints.cloudlink.rstrip("/") + "/ping"), timeout_s=15
        ),
        journal_step("vpn.os_config_journal", "os-config.service"),
    )


def _state(out: StepOutput | None) -> str | None:
    if out is None or not out.output.strip():
        return None
    return out.output.strip().splitlines()[0].strip()


def parse(steps: Mapping[str, StepOutput], ctx: ProbeContext) -> list[Observation]:
    """VPN observations (see the module docstring)."""
    found: list[Observation] = []
    unit = _state(step_output(steps, "vpn.openvpn"))
    if unit is not None:
        found.append(
            Observation("vpn.openvpn_active", unit == "active", (f"openvpn.service: {unit}",), NAME)
        )
    marker = _state(step_output(steps, "vpn.status"))
    if marker in ("active", "inactive"):
        line = f"/run/openvpn/vpn_status/active {'present' if marker == 'active' else 'absent'}"
        found.append(Observation("vpn.status_active", marker == "active", (line,), NAME))
    cloudlink = step_output(steps, "vpn.cloudlink")
    if cloudlink is not None:
        result = parse_curl(cloudlink)
        evidence = (f"GET {ctx.endpoints.cloudlink.rstrip('/')}/ping", *result.evidence)
        found.append(Observation("vpn.cloudlink_outcome", result.outcome, evidence, NAME))
    journal = step_output(steps, "vpn.journal")
    if journal is not None:
        found += scan(journal.output, NAME, default_source="vpn")
    os_config = step_output(steps, "vpn.os_config_journal")
    if os_config is not None:
        found += scan(os_config.output, NAME, default_source="os_config")
    return found


PROBE = make_probe(
    NAME,
    "OpenVPN unit, status marker and journal; Cloudlink /ping; os-config journal",
    build_steps,
    parse,
)
