"""The coordinator of a distributed sweep: shard, enqueue, wait, then patterns once.

``run_distributed`` is ``run_sweep`` spread over ``orch worker`` processes: it starts the run,
plans every device's routes (it alone sees the whole fleet), splits the devices into shards,
enqueues one procrastinate job per shard and waits until every job is final. While it waits it
retries the shards of dead workers (see ``orchestrator.distributed``). Network-wide patterns
need every device, so they are computed here, once, over the stored reports of the whole run,
and only then is the run closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import procrastinate

from orchestrator.config import Config
from orchestrator.distributed.app import ensure_schema, make_app
from orchestrator.distributed.shard import (
    PlannedDevice,
    ShardJob,
    ShardSettings,
    shard_to_json,
    split,
)
from orchestrator.distributed.tasks import QUEUE, SHARD_TASK
from orchestrator.errors import OrchError
from orchestrator.models import Device
from orchestrator.probes.registry import get_probes
from orchestrator.store import Store
from orchestrator.sweep import (
    SweepOutcome,
    SweepRequest,
    complete_run,
    endpoints_from,
    script_budget,
)
from orchestrator.transport.routes import (
    FleetIndex,
    RouteSettings,
    explain_unreachable,
    plan_routes,
)
from orchestrator.transport.ssh import SSHSettings

DEFAULT_SHARD_SIZE = 250
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "aborted"})
_ENQUEUE_BATCH = 50
_STATUS_QUERY = (
    "SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs "
    "WHERE id = ANY(%(ids)s) GROUP BY status"
)

log = logging.getLogger(__name__)


class DistributedRunError(OrchError):
    """A distributed run did not complete (timeout, or shards that failed every attempt)."""

    def __init__(self, message: str, run_status: str = "failed") -> None:
        super().__init__(message)
        self.run_status = run_status


@dataclass(frozen=True)
class DistributedOptions:
    """How the coordinator shards and waits."""

    shard_size: int = DEFAULT_SHARD_SIZE
    timeout_s: float = 6 * 3600.0
    """Give up (run ``interrupted``) when the shards are not all done by then."""
    poll_s: float = 2.0
    stalled_after_s: float = 30.0
    """A worker silent (no heartbeat) this long is dead: its running shards are retried."""


@dataclass(frozen=True)
class ShardProgress:
    """Where a distributed run stands, for a progress line."""

    run_id: int
    shards_total: int
    shards_done: int
    shards_failed: int
    shards_retried: int
    devices_reached: int


def shard_settings(
    request: SweepRequest, config: Config, ssh: SSHSettings, routes: RouteSettings
) -> ShardSettings:
    """The run's settings as shards carry them (the same defaults ``run_sweep`` applies)."""
    probes = get_probes(request.probes)
    device_timeout = request.device_timeout_s or ssh.device_timeout_s
    return ShardSettings(
        probes=tuple(probe.name for probe in probes),
        endpoints=endpoints_from(config),
        concurrency=request.concurrency or config.run["concurrency"],
        budget_s=script_budget(config, device_timeout),
        device_timeout_s=device_timeout,
        connect_timeout_s=ssh.connect_timeout_s,
        login_timeout_s=ssh.login_timeout_s,
        max_output_bytes=ssh.max_output_bytes,
        proxy_sessions_per_connection=ssh.proxy_sessions_per_connection,
        max_proxy_sessions=routes.max_proxy_sessions,
        max_targets_per_gateway=routes.max_targets_per_gateway,
        route_mode=routes.mode,
        insecure_no_host_key_check=ssh.insecure_no_host_key_check,
    )


def plan_devices(
    devices: Sequence[Device], fleet: Sequence[Device], routes: RouteSettings
) -> list[PlannedDevice]:
    """Each device with its route candidates, planned against the whole fleet."""
    index = FleetIndex(list(fleet))
    planned = []
    for device in devices:
        candidates = tuple(plan_routes(device, index, routes))
        reason = "" if candidates else explain_unreachable(device, index, routes)
        planned.append(
            PlannedDevice(device, candidates, reason or ("" if candidates else "no route"))
        )
    return planned


async def run_distributed(
    devices: Sequence[Device],
    request: SweepRequest,
    config: Config,
    store: Store,
    db_url: str,
    ssh: SSHSettings,
    routes: RouteSettings,
    *,
    options: DistributedOptions | None = None,
    progress: Callable[[ShardProgress], None] | None = None,
    fleet: Sequence[Device] | None = None,
) -> SweepOutcome:
    """Diagnose ``devices`` through ``orch worker`` processes and store the run.

    ``db_url`` is the PostgreSQL database of ``store``; it also holds the job queue.
    Raises ``DistributedRunError`` (run left ``interrupted`` or ``failed``) when shards do not
    all succeed in time; Ctrl-C cancels the outstanding shards and marks the run interrupted.
    """
    options = options or DistributedOptions()
    settings = shard_settings(request, config, ssh, routes)
    planned = plan_devices(devices, fleet if fleet is not None else devices, routes)
    shards = [
        ShardJob(run_id=0, index=index, devices=tuple(chunk), settings=settings)
        for index, chunk in enumerate(split(planned, options.shard_size))
    ]
    await ensure_schema(db_url)
    run_id = await asyncio.to_thread(
        store.start_run,
        source=request.source_label,
        fleet=request.fleet,
        devices_total=len(planned),
        options={
            "probes": list(settings.probes),
            "concurrency": settings.concurrency,
            "device_timeout_s": settings.device_timeout_s,
            "route_mode": settings.route_mode,
            "distributed": {"shard_size": options.shard_size, "shards": len(shards)},
        },
    )
    status = "failed"
    app = make_app(db_url)
    try:
        async with app.open_async():
            job_ids = await _enqueue(app, run_id, shards)
            failed = await _wait(app, store, run_id, job_ids, options, progress)
        if failed:
            raise DistributedRunError(
                f"run {run_id}: {failed} of {len(job_ids)} shards failed after "
                f"{_max_attempts(app)} attempts (see the workers' logs); stored devices are "
                f"kept: `orch show {run_id}`"
            )
        outcome = await _conclude(store, run_id, planned, config)
        status = "completed"
        return outcome
    except DistributedRunError as exc:
        status = exc.run_status
        raise
    except asyncio.CancelledError:
        status = "interrupted"
        raise
    finally:
        if status != "completed":
            await asyncio.shield(asyncio.to_thread(store.finish_run, run_id, status))


async def _enqueue(app: procrastinate.App, run_id: int, shards: list[ShardJob]) -> list[int]:
    task = app.tasks[SHARD_TASK]
    job_ids: list[int] = []
    for batch in split(shards, _ENQUEUE_BATCH):
        payloads = [shard_to_json(_with_run(shard, run_id)) for shard in batch]
        job_ids.extend(await task.batch_defer_async(*payloads))
    return job_ids


def _with_run(shard: ShardJob, run_id: int) -> ShardJob:
    return ShardJob(
        run_id=run_id, index=shard.index, devices=shard.devices, settings=shard.settings
    )


async def _wait(
    app: procrastinate.App,
    store: Store,
    run_id: int,
    job_ids: list[int],
    options: DistributedOptions,
    progress: Callable[[ShardProgress], None] | None,
) -> int:
    """Wait until every job is final, retrying dead workers' shards; returns how many failed."""
    deadline = time.monotonic() + options.timeout_s
    retried = 0
    try:
        while True:
            retried += await retry_stalled_shards(app, options.stalled_after_s)
            counts = await _job_counts(app, job_ids)
            done = sum(n for status, n in counts.items() if status in FINAL_STATUSES)
            failed = sum(
                n
                for status, n in counts.items()
                if status != "succeeded" and status in FINAL_STATUSES
            )
            if progress is not None:
                run = await asyncio.to_thread(store.get_run, run_id)
                progress(
                    ShardProgress(run_id, len(job_ids), done, failed, retried, run.devices_reached)
                )
            if done >= len(job_ids):
                return failed
            if time.monotonic() >= deadline:
                raise TimeoutError
            await asyncio.sleep(options.poll_s)
    except TimeoutError:
        await _cancel_outstanding(app, job_ids)
        raise DistributedRunError(
            f"run {run_id}: shards not done after {options.timeout_s:g} s (are `orch worker` "
            "processes running on this database?); run marked interrupted, stored devices kept",
            run_status="interrupted",
        ) from None
    except asyncio.CancelledError:
        await asyncio.shield(_cancel_outstanding(app, job_ids))
        raise


async def retry_stalled_shards(app: procrastinate.App, stalled_after_s: float) -> int:
    """Put back in the queue the running shards of workers silent for ``stalled_after_s``.

    procrastinate marks each job with the worker running it; a live worker refreshes its
    heartbeat every few seconds. A killed worker's heartbeat goes stale, so its ``doing`` jobs
    show up here and are retried (status back to ``todo``), for any other worker to take.
    """
    stalled = await app.job_manager.get_stalled_jobs(
        queue=QUEUE, task_name=SHARD_TASK, seconds_since_heartbeat=stalled_after_s
    )
    count = 0
    for job in stalled:
        try:
            await app.job_manager.retry_job(job)
        except procrastinate.exceptions.ConnectorException:
            continue  # another coordinator retried it first, or it just finished
        log.warning("shard job %s of a dead worker put back in the queue", job.id)
        count += 1
    return count


async def _job_counts(app: procrastinate.App, job_ids: list[int]) -> dict[str, int]:
    rows = await app.connector.execute_query_all_async(_STATUS_QUERY, ids=job_ids)
    return {row["status"]: int(row["n"]) for row in rows}


async def _cancel_outstanding(app: procrastinate.App, job_ids: list[int]) -> None:
    """Cancel queued shards and ask running ones to abort (best effort)."""
    for job_id in job_ids:
        with contextlib.suppress(Exception):
            await app.job_manager.cancel_job_by_id_async(job_id, abort=True)


def _max_attempts(app: procrastinate.App) -> int:
    strategy = app.tasks[SHARD_TASK].retry_strategy
    return getattr(strategy, "max_attempts", None) or 1


async def _conclude(
    store: Store, run_id: int, planned: list[PlannedDevice], config: Config
) -> SweepOutcome:
    """Network patterns once over the whole stored run, then close it ``completed``."""
    reports = await asyncio.to_thread(store.load_report_summaries, run_id)
    warnings = []
    if len(reports) < len(planned):
        warnings.append(f"{len(planned) - len(reports)} devices have no stored result")
    by_uuid = {item.device.uuid: item.device for item in planned}
    return await complete_run(store, run_id, reports, by_uuid, config, warnings)
