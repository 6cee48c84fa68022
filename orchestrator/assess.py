"""Turn what one device sent back into a ``DeviceReport`` (pure: no I/O).

Split the framed output into steps, parse every probe, diagnose root causes, and derive the
device's network keys. A device that never started the script is unreachable and gets one
``access`` finding saying why.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from orchestrator.diagnosis.rules import access_finding, diagnose
from orchestrator.models import Device, DeviceReport, NetworkKeys, Observation, Route
from orchestrator.probes.base import ProbeContext
from orchestrator.probes.registry import parse_all
from orchestrator.probes.script import split_output
from orchestrator.report.terminal import inert

if TYPE_CHECKING:
    from orchestrator.runner import RunPlan
    from orchestrator.transport.ssh import ScriptResult


def printable_excerpt(data: bytes, limit: int = 160) -> str:
    """A short, single-line, control-free excerpt of device output for error messages."""
    text = inert(data[:limit].decode("utf-8", errors="replace"))
    text = " ".join(text.split())
    return text + ("..." if len(data) > limit else "")


def network_keys(device: Device, observations: list[Observation]) -> NetworkKeys:
    """Network keys from the fleet source and the network probe's observations."""
    values = {o.key: o.value for o in observations if o.key.startswith("net.")}

    def text(key: str) -> str | None:
        value = values.get(key)
        return str(value) if value else None

    return NetworkKeys(
        public_address=device.public_address,
        gateway_ip=text("net.gateway_ip"),
        gateway_mac=text("net.gateway_mac"),
        subnet=text("net.subnet"),
        site=device.site,
        labels=device.labels,
    )


def unreachable_report(
    device: Device,
    route: Route | None,
    kind: str,
    message: str,
    started: datetime,
    *,
    truncated: bool = False,
) -> DeviceReport:
    """The report of a device that could not be reached at all."""
    return DeviceReport(
        uuid=device.uuid,
        name=device.name,
        reachable=False,
        route=route.describe() if route else None,
        error=message,
        error_kind=kind,
        findings=(access_finding(kind, message),),
        network=network_keys(device, []),
        started_at=started,
        finished_at=datetime.now(timezone.utc),
        output_truncated=truncated,
    )


def assess_device(
    device: Device,
    route: Route,
    result: ScriptResult,
    *,
    nonce: str,
    plan: RunPlan,
    started: datetime,
) -> DeviceReport:
    """Build one device's report from its transport result."""
    split = split_output(result.stdout, nonce, plan.steps, result.chunk_times)
    error = result.error
    if not split.hello:
        cut = "; output exceeded the size cap and was truncated" if result.truncated else ""
        if error is not None:
            return unreachable_report(
                device, route, error.kind, f"{error}{cut}", started, truncated=result.truncated
            )
        excerpt = printable_excerpt(result.stdout or result.stderr)
        message = (
            f"{route.describe()}: the device did not run the probe script "
            f"(exit status {result.exit_status}; output: {excerpt or 'none'}){cut}"
        )
        return unreachable_report(
            device, route, "protocol", message, started, truncated=result.truncated
        )

    context = ProbeContext(
        endpoints=plan.endpoints,
        sent_at=result.sent_at,
        first_byte_at=result.chunk_times[0][1] if result.chunk_times else None,
        reference_chain=plan.reference_chain,
    )
    observations = parse_all(plan.probes, split.steps, context)
    findings = diagnose(observations)
    problems = []
    if error is not None:
        done = sum(1 for s in split.steps.values() if not s.missing)
        problems.append(f"{error} ({done} of {len(split.steps)} steps completed)")
    elif not split.done:
        problems.append(f"the probe script stopped early (exit status {result.exit_status})")
    if result.truncated:
        problems.append("output exceeded the size cap and was truncated")
    if split.corrupt:
        problems.append(f"ignored {len(split.corrupt)} malformed output frame(s)")
    return DeviceReport(
        uuid=device.uuid,
        name=device.name,
        reachable=True,
        route=route.describe(),
        error="; ".join(problems) or None,
        error_kind=error.kind if error is not None else None,
        findings=tuple(findings),
        observations=tuple(observations),
        steps=tuple(split.steps[s.name] for s in plan.steps),
        network=network_keys(device, observations),
        started_at=started,
        finished_at=datetime.now(timezone.utc),
        output_truncated=result.truncated,
    )
