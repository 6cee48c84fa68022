"""The probe protocol: a probe names read-only shell steps and parses their output.

A probe module defines one ``Probe`` instance and registers it with ``register``. Adding a probe
is adding a module and importing it in ``orchestrator.probes.registry``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from orchestrator.models import Observation, StepOutput

DEFAULT_STEP_TIMEOUT_S = 10.0
DEFAULT_STEP_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Endpoints:
    """The balena endpoints probes talk to (balenaCloud defaults, overridable in config)."""

    api: str = "https://api.balena-cloud.com"
    cloudlink: str = "https://cloudlink.balena-cloud.com"
    registry: str = "https://registry2.balena-cloud.com"
    delta: str = "https://delta.balena-cloud.com"
    ntp_host: str = "0.resinio.pool.ntp.org"
    supervisor: str = "http://127.0.0.1:48484"
    dns_control: str = "8.8.8.8"
    """A public resolver the DNS probe also asks, to tell a dead upstream from a blocked port 53
    (empty: ask only the device's own upstreams)."""
    customer: tuple[str, ...] = ()
    """Extra `host:port` endpoints the operator's own services need."""
    expected_issuers: tuple[str, ...] = ()
    """Substrings of issuer names that a genuine API certificate chain may carry."""


@dataclass(frozen=True)
class ProbeContext:
    """What parsers know besides step output: the endpoints and the orchestrator's clock."""

    endpoints: Endpoints = field(default_factory=Endpoints)
    sent_at: float | None = None
    """Orchestrator wall clock (epoch seconds) when the script was sent."""
    first_byte_at: float | None = None
    """Orchestrator wall clock when the device's first output byte arrived."""
    reference_chain: tuple[str, ...] | None = None
    """Issuer names of the API chain as seen from the orchestrator, if it could look."""


@dataclass(frozen=True)
class Step:
    """One read-only shell command, run under its own time limit and byte cap."""

    name: str
    command: str
    timeout_s: float = DEFAULT_STEP_TIMEOUT_S
    max_bytes: int = DEFAULT_STEP_MAX_BYTES
    env: tuple[tuple[str, str], ...] = ()
    """Variables the command reads (``ORCH_*`` names), exported once at the top of the script."""


Parser = Callable[[Mapping[str, StepOutput], ProbeContext], list[Observation]]


@dataclass(frozen=True)
class Probe:
    """A named group of steps plus the pure parser that turns their output into observations."""

    name: str
    description: str
    steps: tuple[Step, ...]
    parse: Parser
    build_steps: Callable[[Endpoints], tuple[Step, ...]] | None = None
    """When set, steps depend on the configured endpoints; ``steps`` holds the defaults."""

    def steps_for(self, endpoints: Endpoints) -> tuple[Step, ...]:
        """The exact steps this probe runs for these endpoints."""
        if self.build_steps is None:
            return self.steps
        return self.build_steps(endpoints)


def make_probe(
    name: str,
    description: str,
    build_steps: Callable[[Endpoints], tuple[Step, ...]],
    parse: Parser,
) -> Probe:
    """Build a probe whose steps are computed from the endpoints."""
    return Probe(
        name=name,
        description=description,
        steps=build_steps(Endpoints()),
        parse=parse,
        build_steps=build_steps,
    )


def step_output(steps: Mapping[str, StepOutput], name: str) -> StepOutput | None:
    """The output of step ``name`` if it ran (helper for parsers)."""
    out = steps.get(name)
    if out is None or out.skipped or out.missing:
        return None
    return out
