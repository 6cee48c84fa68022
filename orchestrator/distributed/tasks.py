"""The shard task: diagnose one shard's devices with the ordinary runner and store them.

A worker runs a shard exactly like ``run_sweep`` runs a fleet (``FleetRunner``, the SSH
transport, the batching writer), but with the routes the coordinator planned and with its own
SSH keys, known_hosts and database. Reports go through ``Store.save_reports``, which replaces
earlier rows of the same (run, device): a retried shard overwrites, never duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import procrastinate

from orchestrator.config import Config
from orchestrator.distributed.known_hosts import KnownHostsReader
from orchestrator.distributed.shard import ShardJob, shard_from_json
from orchestrator.models import Device
from orchestrator.probes.registry import get_probes, steps_for
from orchestrator.runner import FleetRunner, RunPlan
from orchestrator.store import Store
from orchestrator.sweep import ssh_settings_from
from orchestrator.transport.limits import RouteLimiter
from orchestrator.transport.ssh import SSHSettings, SSHTransport, load_client_keys
from orchestrator.writer import BatchingWriter

SHARD_TASK = "orch.sweep_shard"
QUEUE = "orch"
MAX_ATTEMPTS = 5
"""Attempts of a shard (a failure or a stalled-worker recovery each count as one)."""
RETRY_WAIT_S = 5
CONTEXT_KEY = "orch"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerResources:
    """What a worker brings to every shard: its own database and SSH credentials."""

    store: Store
    ssh: SSHSettings
    """Keys (preloaded) and known_hosts from the worker's own config; timeouts come per run."""
    known_hosts: KnownHostsReader | None = None
    """The worker's known_hosts, parsed again only when the file changes (None: read per shard)."""


def worker_ssh_settings(config: Config) -> SSHSettings:
    """The worker's SSH settings with its keys read once, for all its shards (errors raised
    here, when the worker starts); known_hosts is a ``KnownHostsReader``'s."""
    ssh = ssh_settings_from(config)
    keys, _labels = load_client_keys(ssh)
    return replace(ssh, keys=tuple(keys))


def register_tasks(app: procrastinate.App) -> None:
    """Register the shard task on ``app`` (coordinator and worker use the same definition)."""
    app.task(
        name=SHARD_TASK,
        queue=QUEUE,
        pass_context=True,
        retry=procrastinate.RetryStrategy(max_attempts=MAX_ATTEMPTS, wait=RETRY_WAIT_S),
    )(_shard_task)


async def _shard_task(context: procrastinate.JobContext, **job: Any) -> dict[str, int]:
    resources = context.additional_context.get(CONTEXT_KEY)
    if not isinstance(resources, WorkerResources):
        raise RuntimeError("shard task needs an orch worker (`orch worker`), not a bare one")
    return await run_shard(shard_from_json(job), resources)


async def run_shard(shard: ShardJob, resources: WorkerResources) -> dict[str, int]:
    """Diagnose and store every device of ``shard``; returns counts for the job log.

    A shard of a run that is no longer ``running`` (finished, timed out, interrupted) is
    skipped, so a late retry never writes into a closed run.
    """
    store = resources.store
    run = await asyncio.to_thread(store.get_run, shard.run_id)
    if run.status != "running":
        log.info("run %s is %s: skipping shard %s", shard.run_id, run.status, shard.index)
        return {"run_id": shard.run_id, "shard": shard.index, "stored": 0}
    settings = shard.settings
    probes = get_probes(list(settings.probes))
    plan = RunPlan(
        probes=probes,
        steps=steps_for(probes, settings.endpoints),
        endpoints=settings.endpoints,
        concurrency=max(1, min(settings.concurrency, len(shard.devices))),
        budget_s=settings.budget_s,
        device_timeout_s=settings.device_timeout_s,
    )
    known_hosts = None
    if resources.known_hosts is not None:  # re-parsed (seconds for a big file) only on change
        known_hosts = await asyncio.to_thread(resources.known_hosts.current)
    ssh = replace(
        resources.ssh,
        known_hosts_loaded=known_hosts,
        connect_timeout_s=settings.connect_timeout_s,
        login_timeout_s=settings.login_timeout_s,
        device_timeout_s=settings.device_timeout_s,
        max_output_bytes=settings.max_output_bytes,
        proxy_sessions_per_connection=settings.proxy_sessions_per_connection,
        insecure_no_host_key_check=(
            resources.ssh.insecure_no_host_key_check or settings.insecure_no_host_key_check
        ),
    )
    routes = {planned.device.uuid: planned.routes for planned in shard.devices}
    reasons = {planned.device.uuid: planned.unreachable_reason for planned in shard.devices}
    transport = await asyncio.to_thread(SSHTransport, ssh)
    runner = FleetRunner(
        plan,
        transport,
        lambda device: routes[device.uuid],
        explain_unreachable=lambda device: reasons[device.uuid],
        limiter=RouteLimiter(settings.max_proxy_sessions, settings.max_targets_per_gateway),
    )
    writer = BatchingWriter(lambda batch: store.save_reports(shard.run_id, batch))
    devices: list[Device] = [planned.device for planned in shard.devices]
    started = time.monotonic()
    try:
        await runner.run(devices, writer.put)
    finally:
        await writer.close()
        await transport.close()
    log.info(
        "run %s shard %s: %d devices stored in %.1f s",
        shard.run_id,
        shard.index,
        writer.saved,
        time.monotonic() - started,
    )
    return {"run_id": shard.run_id, "shard": shard.index, "stored": writer.saved}
