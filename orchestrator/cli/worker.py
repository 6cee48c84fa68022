"""``orch worker`` runs shard jobs; ``orch diagnose --workers`` hands a sweep to workers."""

from __future__ import annotations

import logging
import sys
from contextlib import AsyncExitStack, suppress
from dataclasses import replace
from typing import Any

import click

from orchestrator.cli.common import AppState, handle_errors
from orchestrator.errors import UsageError
from orchestrator.report.terminal import inert


async def run_diagnose_on_workers(state: AppState, params: dict[str, Any], _progress: Any) -> Any:
    """``orch diagnose --workers``: list the fleet here, run its shards on workers, conclude."""
    import asyncio
    import signal

    from orchestrator.cli.diagnose_run import _open_source, select_devices, sweep_request
    from orchestrator.distributed.app import postgres_conninfo
    from orchestrator.distributed.coordinator import DistributedOptions, run_distributed
    from orchestrator.sweep import route_settings_from, ssh_settings_from

    config = state.config
    url = params["db"] or config.db_url
    if not url:
        raise UsageError("--workers needs the PostgreSQL results database: --db URL or ORCH_DB_URL")
    postgres_conninfo(url)
    if not (params["inventory"] or params["fleet"] or params["all_fleets"]):
        raise UsageError(
            "--workers needs --fleet, --all-fleets or --inventory: "
            "workers cannot reach the in-process demo fleet"
        )
    store = await asyncio.to_thread(state.open_store, url)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        async with AsyncExitStack() as stack:
            devices, label, fleet, _ssh, proxy_user = await _open_source(stack, state, params)
            chosen = select_devices(devices, params["device"])
            ssh = ssh_settings_from(config)
            if params["insecure_no_host_key_check"]:
                ssh = replace(ssh, insecure_no_host_key_check=True)
            request = sweep_request(params, label, fleet)
            routes = route_settings_from(config, params["route"], proxy_user)
            line = _ProgressLine()
            try:
                return await run_distributed(
                    chosen,
                    request,
                    config,
                    store,
                    url,
                    ssh,
                    routes,
                    options=DistributedOptions(shard_size=params["shard_size"]),
                    progress=line,
                    fleet=devices,
                )
            finally:
                line.finish()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        store.close()


class _ProgressLine:
    """Shards done and devices reached on one stderr line (only when stderr is a terminal)."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.drawn = False

    def __call__(self, progress: Any) -> None:
        if not self.enabled:
            return
        retried = f", {progress.shards_retried} retried" if progress.shards_retried else ""
        sys.stderr.write(
            f"\rrun {progress.run_id}: {progress.shards_done}/{progress.shards_total} shards "
            f"done{retried}, {progress.devices_reached} devices reached"
        )
        sys.stderr.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()


async def _serve(
    state: AppState, url: str, concurrency: int, heartbeat_s: float, shutdown_timeout_s: float
) -> None:
    import asyncio
    import socket

    from orchestrator.distributed.app import ensure_schema, make_app, postgres_conninfo
    from orchestrator.distributed.known_hosts import KnownHostsReader
    from orchestrator.distributed.tasks import (
        CONTEXT_KEY,
        QUEUE,
        WorkerResources,
        worker_ssh_settings,
    )
    from orchestrator.gc_tuning import sweep_gc
    from orchestrator.transport.ssh import raise_nofile_limit

    config = state.config
    postgres_conninfo(url)  # a one-line usage error before anything else for a SQLite URL
    ssh = worker_ssh_settings(config)
    known_hosts = KnownHostsReader(ssh)
    _limit, warning = raise_nofile_limit(concurrency * config.run["concurrency"] * 2 + 64)
    if warning:
        click.echo(inert(f"orch: warning: {warning}"), err=True)
    store = await asyncio.to_thread(state.open_store, url)
    try:
        await ensure_schema(url)
        app = make_app(url, pool_size=concurrency + 2)
        name = f"orch@{socket.gethostname()}"
        click.echo(
            f"orch: worker {name} on {store.url}: up to {concurrency} shards at once "
            "(Ctrl-C or SIGTERM to stop)",
            err=True,
        )
        async with app.open_async():
            with sweep_gc():
                await app.run_worker_async(
                    queues=[QUEUE],
                    name=name,
                    concurrency=concurrency,
                    additional_context={
                        CONTEXT_KEY: WorkerResources(store=store, ssh=ssh, known_hosts=known_hosts)
                    },
                    update_heartbeat_interval=heartbeat_s,
                    stalled_worker_timeout=max(30.0, heartbeat_s * 3),
                    shutdown_graceful_timeout=shutdown_timeout_s,
                    install_signal_handlers=True,
                )
    finally:
        store.close()


def _configure_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # procrastinate's INFO lines repeat every job's arguments (hundreds of devices per shard)
    logging.getLogger("procrastinate").setLevel(logging.DEBUG if debug else logging.WARNING)
    for name in ("asyncssh", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def register(group: click.Group) -> None:
    """Add ``worker`` to the CLI."""

    @group.command()
    @click.option(
        "--concurrency",
        type=click.IntRange(1, 64),
        default=2,
        show_default=True,
        help="Shards run at once (each diagnoses its devices concurrently).",
    )
    @click.option(
        "--db",
        help="PostgreSQL URL of the results database (default: ORCH_DB_URL, then config).",
    )
    @click.option(
        "--heartbeat",
        type=click.FloatRange(0.1, 300),
        default=10.0,
        show_default=True,
        help="Seconds between liveness heartbeats; a silent worker's shards are retried.",
    )
    @click.option(
        "--shutdown-timeout",
        type=click.FloatRange(0, 86400),
        default=60.0,
        show_default=True,
        help="On SIGTERM, seconds to let running shards finish before handing them back.",
    )
    @click.pass_obj
    @handle_errors
    def worker(
        state: AppState,
        concurrency: int,
        db: str | None,
        heartbeat: float,
        shutdown_timeout: float,
    ) -> None:
        """Run shard jobs of distributed sweeps (`orch diagnose --workers`) until stopped.

        The worker uses its own configuration for SSH keys, known_hosts and the database;
        jobs carry only devices, routes and run settings. Start one per machine (systemd:
        config/orch-worker.service); any number may share one PostgreSQL database.
        """
        url = db or state.config.db_url
        if not url:
            raise UsageError(
                "orch worker needs the PostgreSQL results database: --db URL or ORCH_DB_URL"
            )
        import asyncio

        _configure_logging(state.debug)
        with suppress(KeyboardInterrupt):
            asyncio.run(_serve(state, url, concurrency, heartbeat, shutdown_timeout))
        click.echo("orch: worker stopped", err=True)
