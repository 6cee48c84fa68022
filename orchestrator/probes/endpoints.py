"""endpoints (firewall): TCP reachability of every required endpoint and of customer ones.

balena endpoints (API, Cloudlink, registry, delta) are tried with ``https://HOST:PORT/`` so a
TLS answer counts as open; customer ``host:port`` endpoints with ``telnet://HOST:PORT`` (any
protocol). A connect timeout is a *drop*, a refusal a *reject*; a resolve failure is DNS and
is reported as such, never as the firewall.

Observation ``endpoint.tcp`` (one per endpoint), value ``{"target": "host:port", "role":
"api"|"cloudlink"|"registry"|"delta"|"customer", "outcome": "open"|<curl_result outcome>}``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from orchestrator.errors import ConfigError
from orchestrator.models import Observation, StepOutput
from orchestrator.probes.base import Endpoints, ProbeContext, Step, make_probe, step_output
from orchestrator.probes.curl_result import curl_command, parse_curl

NAME = "endpoints"
ROLES = ("api", "cloudlink", "registry", "delta")
_HOST_PORT = re.compile(
    r"^([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:]+\]):(\d{1,5})$"
)


def target_of(url: str) -> str:
    """``host:port`` of an endpoint URL (443 unless the URL names a port)."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    port = parts.port or (80 if parts.scheme == "http" else 443)
    return f"{parts.hostname}:{port}"


def customer_targets(endpoints: Endpoints) -> list[str]:
    """The validated customer ``host:port`` list (a clear error for a malformed entry)."""
    targets = []
    for entry in endpoints.customer:
        match = _HOST_PORT.match(entry.strip())
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise ConfigError(
                f"customer endpoint {entry!r} is not host:port (e.g. mqtt.example.com:8883)"
            )
        targets.append(entry.strip())
    return targets


def _targets(endpoints: Endpoints) -> list[tuple[str, str, str]]:
    found = [(role, target_of(getattr(endpoints, role)), "https") for role in ROLES]
    found += [("customer", target, "telnet") for target in customer_targets(endpoints)]
    return found


def _step_name(index: int, role: str) -> str:
    return (
        f"endpoints.{role}" if role != "customer" else f"endpoints.customer{index - len(ROLES) + 1}"
    )


def build_steps(endpoints: Endpoints) -> tuple[Step, ...]:
    """One TCP reachability step per endpoint."""
    steps = []
    for index, (role, target, scheme) in enumerate(_targets(endpoints)):
        if scheme == "https":
            command = curl_command(f"https://{target}/", max_time=8, connect_timeout=6)
        else:
            command = curl_command(f"telnet://{target}", max_time=4, connect_timeout=3, extra="")
        steps.append(Step(_step_name(index, role), command, timeout_s=12))
    return tuple(steps)


def parse(steps: Mapping[str, StepOutput], ctx: ProbeContext) -> list[Observation]:
    """One ``endpoint.tcp`` observation per endpoint that ran."""
    found = []
    for index, (role, target, _scheme) in enumerate(_targets(ctx.endpoints)):
        out = step_output(steps, _step_name(index, role))
        if out is None:
            continue
        result = parse_curl(out)
        outcome = "open" if result.connected else result.outcome
        value = {"target": target, "role": role, "outcome": outcome}
        evidence = (f"TCP {target} ({role}): {outcome}", *result.evidence)
        found.append(Observation("endpoint.tcp", value, evidence, NAME))
    return found


PROBE = make_probe(
    NAME,
    "TCP reachability of API, Cloudlink, registry, delta and customer endpoints",
    build_steps,
    parse,
)
