"""The work behind ``orch diagnose``: open the fleet source, run the sweep, pick the exit code.

Imported only when ``diagnose`` runs, so ``orch --help`` does not pay for asyncio and friends.
"""

from __future__ import annotations

import asyncio
import signal
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import click

from orchestrator.cli.common import (
    EXIT_OK,
    EXIT_PROBLEMS,
    AppState,
)
from orchestrator.errors import UsageError


def select_devices(devices: list, wanted: tuple[str, ...]) -> list:
    """Devices whose uuid, uuid prefix (7+ characters) or name matches one of ``wanted``."""
    if not wanted:
        return devices
    chosen = []
    for device in devices:
        for want in wanted:
            if want in (device.uuid, device.name) or (
                len(want) >= 7 and device.uuid.startswith(want)
            ):
                chosen.append(device)
                break
    if not chosen:
        raise UsageError(f"no device matches {', '.join(wanted)}")
    return chosen


def sweep_request(params: dict[str, Any], label: str, fleet: str | None) -> Any:
    """The SweepRequest for these command-line parameters."""
    from orchestrator.sweep import SweepRequest

    return SweepRequest(
        source_label=label,
        fleet=fleet,
        probes=list(params["probe"]) or None,
        concurrency=params["concurrency"],
        device_timeout_s=params["timeout"],
        route_mode=params["route"],
    )


async def run_diagnose(state: AppState, params: dict[str, Any], progress_factory) -> Any:
    from orchestrator.gc_tuning import imports_frozen, sweep_gc

    with imports_frozen():
        from orchestrator.sweep import (
            route_settings_from,
            run_sweep,
            ssh_settings_from,
        )

    config = state.config
    store = await asyncio.to_thread(state.open_sweep_store, params["db"])
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        async with AsyncExitStack() as stack:
            devices, label, fleet, ssh_overrides, proxy_user = await _open_source(
                stack, state, params
            )
            fleet_devices = devices
            devices = select_devices(devices, params["device"])
            cli_overrides = {
                "key_files": tuple(params["key"]),
                "known_hosts": params["known_hosts"],
            }
            ssh = ssh_settings_from(config, **{**cli_overrides, **ssh_overrides})
            if params["insecure_no_host_key_check"]:
                from dataclasses import replace

                ssh = replace(ssh, insecure_no_host_key_check=True)
            routes = route_settings_from(config, params["route"], proxy_user)
            request = sweep_request(params, label, fleet)
            progress = progress_factory(len(devices))
            try:
                with sweep_gc():
                    return await run_sweep(
                        devices, request, config, store, ssh, routes, progress, fleet=fleet_devices
                    )
            finally:
                progress.finish()
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        store.close()


async def _open_source(stack: AsyncExitStack, state: AppState, params: dict[str, Any]):
    """Devices, run label, fleet name, SSH overrides and proxy user for the chosen source."""
    config = state.config
    if params["demo_devices"]:
        params["demo"] = True
    chosen = [
        bool(params["demo"]),
        bool(params["inventory"]),
        bool(params["fleet"] or params["all_fleets"]),
    ]
    if sum(chosen) > 1:
        raise UsageError("choose one source: --demo, --inventory or --fleet/--all-fleets")
    if params["inventory"]:
        from orchestrator.fleet.inventory import InventoryFleetSource

        source = InventoryFleetSource(
            params["inventory"], default_port=config.ssh["port"], default_user=config.ssh["user"]
        )
        devices = await asyncio.to_thread(source.list_devices)
        return devices, source.label, None, {}, None
    if params["fleet"] or params["all_fleets"]:
        return await _balena_source(state, params)
    if not params["demo"] and config.token:
        raise UsageError("say which fleet: --fleet SLUG (or --all-fleets, --inventory, --demo)")
    if not params["demo"]:
        click.echo(
            "orch: no fleet given and no balena token configured: diagnosing the demo fleet",
            err=True,
        )
    import tempfile

    from orchestrator.fleet.demo import start_demo_fleet

    fleet = await stack.enter_async_context(start_demo_fleet(size=params["demo_devices"]))
    tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="orch-demo-"))
    _key_path, known_hosts = fleet.write_client_files(Path(tmp))
    overrides = {"keys": (fleet.client_key,), "known_hosts": str(known_hosts)}
    return list(fleet.devices), "demo", "demo", overrides, None


async def _balena_source(state: AppState, params: dict[str, Any]):
    from orchestrator.cli.devices import balena_settings_from
    from orchestrator.fleet.balena import (
        BalenaFleetSource,
        list_fleets,
        whoami_username,
    )

    settings = balena_settings_from(state.config)
    slugs = list(params["fleet"])
    if params["all_fleets"]:
        slugs = await asyncio.to_thread(list_fleets, settings)
    devices = []
    for slug in slugs:
        devices.extend(await asyncio.to_thread(BalenaFleetSource(settings, slug).list_devices))
    user = settings.ssh_user or await asyncio.to_thread(whoami_username, settings)
    label = "balena:" + ",".join(slugs)
    return devices, label, ",".join(slugs), {}, user


def exit_code_for(outcome: Any) -> int:
    """0 when every device is healthy and no network is flagged, else 1."""
    healthy = all(r.healthy for r in outcome.reports) and not outcome.network_findings
    return EXIT_OK if healthy else EXIT_PROBLEMS
