"""registry: is the container registry reachable (``/v2/`` answering 401 means yes).

Observations: ``registry.outcome`` (curl_result outcome), ``registry.http_status``.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.models import Observation, StepOutput
from orchestrator.probes.base import Endpoints, ProbeContext, Step, make_probe, step_output
from orchestrator.probes.curl_result import curl_command, parse_curl

NAME = "registry"


def build_steps(endpoints: Endpoints) -> tuple[Step, ...]:
    """One curl of ``<registry>/v2/``, body discarded."""
    url = endpoints.registry.rstrip("/") + "/v2/"
    return (Step("registry.v2", curl_command(url, max_time=15), timeout_s=20),)


def parse(steps: Mapping[str, StepOutput], ctx: ProbeContext) -> list[Observation]:
    """Classify the registry answer."""
    out = step_output(steps, "registry.v2")
    if out is None:
        return []
    result = parse_curl(out)
    evidence = (f"GET {ctx.endpoints.registry.rstrip('/')}/v2/", *result.evidence)
    return [
        Observation("registry.outcome", result.outcome, evidence, NAME),
        Observation("registry.http_status", result.http_status, evidence, NAME),
    ]


PROBE = make_probe(NAME, "container registry /v2/ (401 = reachable)", build_steps, parse)
