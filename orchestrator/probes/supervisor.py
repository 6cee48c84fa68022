"""supervisor: the local supervisor API (HTTP status, not just curl's exit), unit and journal.

Observations: ``supervisor.active`` (bool), ``supervisor.ping_ok`` (bool, ``/ping`` said OK),
``supervisor.healthy_status`` (int or None when unreachable; 500 means unhealthy),
``supervisor.healthy_outcome`` (curl_result outcome), ``log.supervisor.*``.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.diagnosis.signatures import scan
from orchestrator.models import Observation, StepOutput
from orchestrator.probes.base import Endpoints, ProbeContext, Step, make_probe, step_output
from orchestrator.probes.curl_result import curl_command, parse_curl
from orchestrator.probes.journal import journal_step

NAME = "supervisor"


def build_steps(endpoints: Endpoints) -> tuple[Step, ...]:
    """Unit state, /ping, /v1/healthy and the journal."""
    base = endpoints.supervisor.rstrip("/")
    return (
        Step("supervisor.unit", "systemctl is-active balena-supervisor.service", timeout_s=5),
        Step(
            "supervisor.ping",
            curl_command(base + "/ping", max_time=5, connect_timeout=3, extra=""),
            timeout_s=8,
        ),
        Step(
            "supervisor.healthy",
            curl_command(base + "/v1/healthy", max_time=10, connect_timeout=3, extra=""),
            timeout_s=13,
        ),
        journal_step("supervisor.journal", "balena-supervisor.service"),
    )


def parse(steps: Mapping[str, StepOutput], ctx: ProbeContext) -> list[Observation]:
    """Supervisor observations (see the module docstring)."""
    found: list[Observation] = []
    unit = step_output(steps, "supervisor.unit")
    if unit is not None and unit.output.strip():
        state = unit.output.strip().splitlines()[0].strip()
        found.append(
            Observation(
                "supervisor.active",
                state == "active",
                (f"balena-supervisor.service: {state}",),
                NAME,
            )
        )
    ping = step_output(steps, "supervisor.ping")
    if ping is not None:
        result = parse_curl(ping)
        ok = result.http_status == 200 and result.body.strip() == "OK"
        found.append(Observation("supervisor.ping_ok", ok, ("GET /ping", *result.evidence), NAME))
    healthy = step_output(steps, "supervisor.healthy")
    if healthy is not None:
        result = parse_curl(healthy)
        evidence = ("GET /v1/healthy", *result.evidence, *([result.body] if result.body else []))
        found.append(Observation("supervisor.healthy_status", result.http_status, evidence, NAME))
        found.append(Observation("supervisor.healthy_outcome", result.outcome, evidence, NAME))
    journal = step_output(steps, "supervisor.journal")
    if journal is not None:
        found += scan(journal.output, NAME, default_source="supervisor")
    return found


PROBE = make_probe(
    NAME, "supervisor unit, /ping, /v1/healthy status and journal", build_steps, parse
)
