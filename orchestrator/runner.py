"""Async fan-out over a fleet: bounded concurrency, per-device deadline, route fallback.

Each device goes through route candidates until one reaches it, runs the one probe script,
and becomes a ``DeviceReport`` (see ``orchestrator.assess``). Reports stream to a sink that
stores them; a device counts as done only once its sink call returned (it is stored).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from orchestrator.assess import assess_device, unreachable_report
from orchestrator.models import Device, DeviceReport, Route
from orchestrator.probes.base import Endpoints, Probe, Step
from orchestrator.probes.script import build_script, new_nonce
from orchestrator.transport.ssh import ScriptResult

STORE_BACKLOG_PER_SLOT = 2
"""Reports per connection slot that may wait for storage while the slot probes on."""
FALLBACK_KINDS = frozenset({"timeout", "refused", "unreachable", "auth", "hostkey", "proxy"})
"""Transport error kinds after which the next route candidate is tried."""

Planner = Callable[[Device], Sequence[Route]]
Sink = Callable[[DeviceReport], Awaitable[None]]
Progress = Callable[[DeviceReport], None]


class ScriptTransport:
    """What the runner needs from a transport (``SSHTransport`` implements it)."""

    async def run_script(
        self, route: Route, script: bytes, *, deadline_s: float | None = None
    ) -> ScriptResult:  # pragma: no cover - protocol
        raise NotImplementedError


@dataclass(frozen=True)
class RunPlan:
    """What to run on every device and under which limits."""

    probes: Sequence[Probe]
    steps: Sequence[Step]
    endpoints: Endpoints = field(default_factory=Endpoints)
    concurrency: int = 100
    budget_s: float = 90.0
    device_timeout_s: float = 120.0
    reference_chain: tuple[str, ...] | None = None


class _NoLimit:
    """Stands in for a RouteLimiter when the caller has none."""

    def slot(self, route: Route) -> _NoLimit:
        return self

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


class FleetRunner:
    """Diagnoses devices concurrently and streams their reports to a sink."""

    def __init__(
        self,
        plan: RunPlan,
        transport: ScriptTransport,
        planner: Planner,
        *,
        explain_unreachable: Callable[[Device], str] | None = None,
        limiter: object | None = None,
    ) -> None:
        self.plan = plan
        self.transport = transport
        self.planner = planner
        self.explain_unreachable = explain_unreachable
        self.limiter = limiter or _NoLimit()
        self.nonce = new_nonce()
        self.script = build_script(plan.steps, self.nonce, plan.budget_s)

    async def run(
        self, devices: Iterable[Device], sink: Sink, progress: Progress | None = None
    ) -> None:
        """Diagnose every device; returns when all reports have gone through the sink."""
        queue: asyncio.Queue[Device | None] = asyncio.Queue()
        count = 0
        for device in devices:
            queue.put_nowait(device)
            count += 1
        workers = max(1, min(self.plan.concurrency, count))
        for _ in range(workers):
            queue.put_nowait(None)

        # Storing is waited for apart from probing: a worker goes on to its next device while
        # its report is committed, so storage latency never idles a connection slot. At most
        # STORE_BACKLOG_PER_SLOT reports per slot wait for storage (memory stays bounded).
        room = asyncio.Semaphore(workers * STORE_BACKLOG_PER_SLOT)
        storing: set[asyncio.Task[None]] = set()
        failed: list[BaseException] = []

        async def finish(report: DeviceReport) -> None:
            try:
                await sink(report)
            except Exception as exc:  # run() raises it; left in this task, nobody would read it
                if not failed:
                    failed.append(exc)
                    for task in probing:
                        task.cancel()
                return
            finally:
                room.release()
            if progress is not None:
                progress(report)

        async def worker() -> None:
            while not failed and (device := queue.get_nowait()) is not None:
                report = await self.diagnose(device)
                await room.acquire()
                task = asyncio.ensure_future(finish(report))
                storing.add(task)
                task.add_done_callback(storing.discard)

        probing = [asyncio.ensure_future(worker()) for _ in range(workers)]
        try:
            outcomes = await asyncio.gather(*probing, return_exceptions=True)
            await asyncio.gather(*list(storing), return_exceptions=True)
        except BaseException:
            for task in [*probing, *storing]:
                task.cancel()
            raise
        if failed:
            raise failed[0]
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def diagnose(self, device: Device) -> DeviceReport:
        """Reach one device by its first working route and assess what it printed."""
        started = datetime.now(timezone.utc)
        routes = list(self.planner(device))
        if not routes:
            reason = self.explain_unreachable(device) if self.explain_unreachable else ""
            return unreachable_report(device, None, "unreachable", reason or "no route", started)
        failures: list[str] = []
        report: DeviceReport | None = None
        for route in routes:
            try:
                async with self.limiter.slot(route):
                    result = await self.transport.run_script(
                        route, self.script, deadline_s=self.plan.device_timeout_s
                    )
            except Exception as exc:  # a transport bug must not stop the run
                result = _crashed(exc)
            report = assess_device(
                device, route, result, nonce=self.nonce, plan=self.plan, started=started
            )
            error = result.error
            if report.reachable or error is None or error.kind not in FALLBACK_KINDS:
                break
            failures.append(f"{route.kind}: {error}")
        assert report is not None
        if report.reachable and failures:
            report = replace(report, route=f"{report.route} (after {'; '.join(failures)})")
        elif len(failures) > 1:
            report = replace(report, error="no route worked: " + "; ".join(failures))
        return report


def _crashed(exc: BaseException) -> ScriptResult:
    from orchestrator.errors import TransportError

    now = time.time()
    return ScriptResult(
        stdout=b"",
        stderr=b"",
        exit_status=None,
        sent_at=now,
        chunk_times=(),
        truncated=False,
        error=TransportError("error", f"internal transport error: {type(exc).__name__}: {exc}"),
        connect_s=0.0,
        total_s=0.0,
    )
