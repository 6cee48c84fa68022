"""One diagnosis run over a fleet: the library behind ``orch diagnose``.

It wires the pieces in DESIGN order (fleet source -> route planner -> transport -> probe script
-> parsers -> rules -> patterns -> store) and guarantees the run's bookkeeping: every finished
device is stored before it counts, and a run that stops early is marked ``interrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from orchestrator.config import Config
from orchestrator.diagnosis.patterns import PatternSettings, attribute, find_patterns
from orchestrator.frozen import evolve
from orchestrator.models import Device, DeviceReport, NetworkFinding, RunSummary
from orchestrator.probes.base import Endpoints
from orchestrator.probes.registry import get_probes, steps_for
from orchestrator.runner import FleetRunner, RunPlan
from orchestrator.store.common import SweepStore
from orchestrator.store.sqlite_sweep import SQLiteSweepStore
from orchestrator.transport.limits import RouteLimiter
from orchestrator.transport.routes import (
    FleetIndex,
    RouteSettings,
    explain_unreachable,
    plan_routes,
)
from orchestrator.transport.ssh import SSHSettings, SSHTransport, raise_nofile_limit
from orchestrator.writer import BatchingWriter


@dataclass(frozen=True)
class SweepRequest:
    """What the user asked for on top of the configuration."""

    source_label: str
    fleet: str | None = None
    probes: Sequence[str] | None = None
    concurrency: int | None = None
    device_timeout_s: float | None = None
    route_mode: str | None = None


@dataclass(frozen=True)
class SweepOutcome:
    """The stored run plus what the report needs (slim reports: findings, no raw output)."""

    run: RunSummary
    reports: list[DeviceReport]
    network_findings: list[NetworkFinding]
    warnings: list[str]


def endpoints_from(config: Config) -> Endpoints:
    """Endpoints from the ``[endpoints]`` section."""
    section = config.endpoints
    return Endpoints(
        api=section["api"].rstrip("/"),
        cloudlink=section["cloudlink"].rstrip("/"),
        registry=section["registry"].rstrip("/"),
        delta=section["delta"].rstrip("/"),
        ntp_host=section["ntp_host"],
        dns_control=section["dns_control"],
        customer=tuple(section["customer"]),
        expected_issuers=tuple(section["expected_issuers"]),
    )


def ssh_settings_from(config: Config, **overrides: object) -> SSHSettings:
    """SSH settings from the ``[ssh]`` section, with command-line overrides."""
    section = config.ssh
    settings = SSHSettings(
        key_files=tuple(section["keys"]),
        known_hosts=section["known_hosts"] or None,
        insecure_no_host_key_check=section["insecure_no_host_key_check"],
        connect_timeout_s=section["connect_timeout"],
        login_timeout_s=section["login_timeout"],
        device_timeout_s=section["device_timeout"],
        max_output_bytes=section["max_output_bytes"],
        proxy_sessions_per_connection=config.routes["sessions_per_connection"],
    )
    if section["kex_algs"]:
        settings = replace(settings, kex_algs=section["kex_algs"])
    if section["ciphers"]:
        settings = replace(settings, encryption_algs=section["ciphers"])
    return replace(settings, **{k: v for k, v in overrides.items() if v not in (None, ())})


def route_settings_from(config: Config, mode: str | None, proxy_user: str | None) -> RouteSettings:
    """Route planner settings from ``[routes]``, ``[balena]`` and ``[ssh]``."""
    routes, balena = config.routes, config.balena
    chosen = mode or routes["mode"]
    return RouteSettings(
        mode=chosen,
        proxy_host=balena["ssh_host"],
        proxy_port=balena["ssh_port"],
        proxy_user=balena["ssh_user"] or proxy_user,
        direct_port=config.ssh["port"],
        direct_user=config.ssh["user"],
        local_network=routes["local_network"] or chosen in ("direct", "jump"),
        max_proxy_sessions=routes["max_proxy_sessions"],
        max_targets_per_gateway=routes["max_targets_per_gateway"],
    )


def script_budget(config: Config, device_timeout_s: float) -> float:
    """Seconds the probe script may keep starting steps: the config budget, inside the deadline."""
    return min(config.run["budget"], max(1.0, device_timeout_s - 5))


def slim(report: DeviceReport) -> DeviceReport:
    """The report without raw steps and observations, to keep memory flat in fleet size."""
    return evolve(report, steps=(), observations=())


async def run_sweep(
    devices: Sequence[Device],
    request: SweepRequest,
    config: Config,
    store: SweepStore,
    ssh: SSHSettings,
    routes: RouteSettings,
    progress: Callable[[DeviceReport], None] | None = None,
    fleet: Sequence[Device] | None = None,
) -> SweepOutcome:
    """Diagnose ``devices`` and store the run; Ctrl-C or a crash leaves it ``interrupted``.

    ``fleet`` is the whole fleet the devices belong to (default: ``devices``): route planning
    looks for gateways and siblings in it even when only some devices are diagnosed.
    """
    probes = get_probes(request.probes)
    endpoints = endpoints_from(config)
    concurrency = request.concurrency or config.run["concurrency"]
    device_timeout = request.device_timeout_s or ssh.device_timeout_s
    plan = RunPlan(
        probes=probes,
        steps=steps_for(probes, endpoints),
        endpoints=endpoints,
        concurrency=concurrency,
        budget_s=script_budget(config, device_timeout),
        device_timeout_s=device_timeout,
    )
    warnings: list[str] = []
    _limit, warning = raise_nofile_limit(concurrency * 2 + 64)
    if warning:
        warnings.append(warning)
    transport = SSHTransport(replace(ssh, device_timeout_s=device_timeout))
    targets = list(devices)
    # built once: planning per device stays O(1) in fleet size
    index = FleetIndex(list(fleet) if fleet is not None else targets)
    runner = FleetRunner(
        plan,
        transport,
        lambda device: plan_routes(device, index, routes),
        explain_unreachable=lambda device: explain_unreachable(device, index, routes),
        limiter=RouteLimiter(routes.max_proxy_sessions, routes.max_targets_per_gateway),
    )
    options = {
        "probes": [p.name for p in probes],
        "concurrency": concurrency,
        "device_timeout_s": device_timeout,
        "route_mode": routes.mode,
    }
    run_id = await asyncio.to_thread(
        store.start_run,
        source=request.source_label,
        fleet=request.fleet,
        devices_total=len(targets),
        options=options,
    )
    writer = result_writer(store, run_id)
    reports: list[DeviceReport] = []

    async def sink(report: DeviceReport) -> None:
        await writer.put(report)
        reports.append(slim(report))

    status = "failed"
    try:
        await runner.run(targets, sink, progress)
        await writer.close()
        status = "completed"
    except asyncio.CancelledError:
        status = "interrupted"
        raise
    finally:
        if status != "completed":
            await asyncio.shield(_close_quietly(writer))
        await transport.close()
        if status != "completed":
            await asyncio.to_thread(store.finish_run, run_id, status)
    by_uuid = {device.uuid: device for device in targets}
    return await complete_run(store, run_id, reports, by_uuid, config, warnings)


async def complete_run(
    store: SweepStore,
    run_id: int,
    reports: list[DeviceReport],
    devices: dict[str, Device],
    config: Config,
    warnings: list[str],
) -> SweepOutcome:
    """Find network-wide patterns once over the whole run, store them, mark it completed."""
    settings = PatternSettings(
        min_group=config.patterns["min_group"],
        min_share=config.patterns["min_share"],
        max_p_value=config.patterns["max_p_value"],
    )
    network = find_patterns(reports, devices, settings)
    if network:
        reports = attribute(reports, network)
        causes = {r.uuid: r.network_cause for r in reports if r.network_cause}
        await asyncio.to_thread(store.set_network_causes, run_id, causes)
    await asyncio.to_thread(store.save_network_findings, run_id, network)
    run = await asyncio.to_thread(store.finish_run, run_id, "completed")
    return SweepOutcome(run=run, reports=reports, network_findings=network, warnings=warnings)


def result_writer(store: SweepStore, run_id: int) -> BatchingWriter:
    """The batching writer for a run's reports.

    A SQLite file written through ``sqlite3`` commits on the event loop's thread (the work is
    CPU under the GIL: on a second thread it only added GIL handoffs, ~9 % of a proxy sweep's
    CPU) and waits for the disk on the writer's thread; anything else, whose commits wait on a
    server, commits on the writer's thread.
    """
    if isinstance(store, SQLiteSweepStore):
        sqlite_store = store
        return BatchingWriter(
            lambda batch: sqlite_store.save_reports(run_id, batch, sync=False),
            sync=sqlite_store.sync,
        )
    return BatchingWriter(lambda batch: store.save_reports(run_id, batch))


async def _close_quietly(writer: BatchingWriter) -> None:
    with contextlib.suppress(Exception):  # the run is already being marked as not completed
        await writer.close()
