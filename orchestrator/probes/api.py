"""api: ``<api>/ping`` through the device's own network path.

Observations: ``api.outcome`` (a curl_result outcome), ``api.http_status`` (int or None),
``api.curl_exit`` (int or None), ``api.body_ok`` (bool, body is ``OK``).
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.models import Observation, StepOutput
from orchestrator.probes.base import Endpoints, ProbeContext, Step, make_probe, step_output
from orchestrator.probes.curl_result import curl_command, parse_curl

NAME = "api"


def build_steps(endpoints: Endpoints) -> tuple[Step, ...]:
    """One curl of ``<api>/ping`` with its body kept."""
    url = endpoints.api.rstrip("/") + "/ping"
    return (Step("api.ping", curl_command(url, max_time=15, extra=""), timeout_s=20),)


def parse(steps: Mapping[str, StepOutput], ctx: ProbeContext) -> list[Observation]:
    """Classify the ping (see the module docstring)."""
    out = step_output(steps, "api.ping")
    if out is None:
        return []
    result = parse_curl(out)
    evidence = (f"GET {ctx.endpoints.api.rstrip('/')}/ping", *result.evidence)
    return [
        Observation("api.outcome", result.outcome, evidence, NAME),
        Observation("api.http_status", result.http_status, evidence, NAME),
        Observation("api.curl_exit", result.exit_code, evidence, NAME),
        Observation("api.body_ok", result.body.strip() == "OK", evidence, NAME),
    ]


PROBE = make_probe(NAME, "API /ping: HTTP status, body and curl error class", build_steps, parse)
