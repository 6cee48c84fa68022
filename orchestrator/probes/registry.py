"""The probe registry: every probe in run order (time first: its date step opens the script)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from orchestrator.errors import UsageError
from orchestrator.models import Observation, StepOutput
from orchestrator.probes import (
    api,
    clock,
    container_registry,
    dns,
    endpoints,
    link,
    network,
    supervisor,
    tls,
    vpn,
)
from orchestrator.probes.base import Endpoints, Probe, ProbeContext, Step

PROBES: tuple[Probe, ...] = (
    clock.PROBE,
    dns.PROBE,
    api.PROBE,
    vpn.PROBE,
    endpoints.PROBE,
    tls.PROBE,
    supervisor.PROBE,
    container_registry.PROBE,
    network.PROBE,
    link.PROBE,
)


def probe_names() -> list[str]:
    """Names of every probe, in run order."""
    return [probe.name for probe in PROBES]


def get_probes(names: Sequence[str] | None = None) -> list[Probe]:
    """The probes called ``names`` in run order (all when None); unknown names are a UsageError."""
    if not names:
        return list(PROBES)
    wanted = [name.strip() for name in names if name.strip()]
    unknown = [name for name in wanted if name not in probe_names()]
    if unknown:
        raise UsageError(
            f"unknown probe {', '.join(unknown)}: choose from {', '.join(probe_names())}"
        )
    return [probe for probe in PROBES if probe.name in wanted]


def steps_for(probes: Iterable[Probe], endpoints: Endpoints) -> list[Step]:
    """Every step of ``probes`` for these endpoints, in run order."""
    return [step for probe in probes for step in probe.steps_for(endpoints)]


def parse_all(
    probes: Iterable[Probe], steps: Mapping[str, StepOutput], ctx: ProbeContext
) -> list[Observation]:
    """Run every parser; a parser that raises becomes a ``probe.error`` observation."""
    found: list[Observation] = []
    for probe in probes:
        try:
            found.extend(probe.parse(steps, ctx))
        except Exception as exc:  # noqa: BLE001 - one broken parser must not lose the device
            message = f"{probe.name}: parser failed: {type(exc).__name__}: {exc}"
            found.append(Observation("probe.error", probe.name, (message,), probe.name))
    return found
