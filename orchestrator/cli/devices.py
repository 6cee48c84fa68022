"""``orch devices``: list a balena fleet with state, network keys and the planned route."""

from __future__ import annotations

from typing import Any

import click

from orchestrator.cli.common import FORMAT_CHOICES, AppState, dumps, emit, handle_errors


def balena_settings_from(config: Any) -> Any:
    """BalenaSettings from the ``[balena]`` section plus environment (token never printed)."""
    from orchestrator.fleet.balena import BalenaSettings

    section = config.balena
    return BalenaSettings(
        api_url=section["api_url"],
        token=config.token,
        ssh_host=section["ssh_host"],
        ssh_user=section["ssh_user"] or None,
        timeout_s=section["timeout"],
        page_size=section["page_size"],
    )


def _listing(state: AppState, slugs: list[str], all_fleets: bool, route: str | None) -> list[dict]:
    from orchestrator.errors import UsageError
    from orchestrator.fleet.balena import BalenaFleetSource, list_fleets, whoami_username
    from orchestrator.sweep import route_settings_from
    from orchestrator.transport.routes import explain_unreachable, plan_routes

    settings = balena_settings_from(state.config)
    if all_fleets:
        slugs = list_fleets(settings)
    if not slugs:
        raise UsageError("say which fleet: --fleet SLUG or --all-fleets")
    devices = []
    for slug in slugs:
        devices.extend(BalenaFleetSource(settings, slug).list_devices())
    routes = route_settings_from(state.config, route, whoami_username(settings))
    rows = []
    for device in devices:
        planned = plan_routes(device, devices, routes)
        rows.append(
            {
                "uuid": device.uuid,
                "name": device.name,
                "fleet": device.fleet,
                "online": device.is_online,
                "vpn": device.is_connected_to_vpn,
                "heartbeat": device.heartbeat,
                "public_address": device.public_address,
                "local_ips": list(device.local_ips),
                "os_version": device.os_version,
                "route": planned[0].describe() if planned else None,
                "route_reason": planned[0].reason
                if planned
                else explain_unreachable(device, devices, routes),
                "fallbacks": [r.describe() for r in planned[1:]],
            }
        )
    return rows


def register(group: click.Group) -> None:
    """Add ``devices`` to the CLI."""

    @group.command()
    @click.option("--fleet", multiple=True, help="balena fleet slug or id (repeatable).")
    @click.option("--all-fleets", is_flag=True, help="Every fleet the token can see.")
    @click.option(
        "--route",
        type=click.Choice(["auto", "proxy", "hostvia", "direct", "jump"]),
        help="Plan with this route kind.",
    )
    @click.option("--format", "fmt", type=FORMAT_CHOICES, default="table", show_default=True)
    @click.pass_obj
    @handle_errors
    def devices(
        state: AppState, fleet: tuple[str, ...], all_fleets: bool, route: str | None, fmt: str
    ) -> None:
        """List fleet devices with their state, network keys and the route orch would use."""
        rows = _listing(state, list(fleet), all_fleets, route)
        if fmt == "json":
            emit(dumps(rows))
        elif fmt == "csv":
            import csv
            import io

            buffer = io.StringIO()
            writer = csv.DictWriter(
                buffer, fieldnames=list(rows[0]) if rows else ["uuid"], lineterminator="\n"
            )
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {k: " ".join(v) if isinstance(v, list) else v for k, v in row.items()}
                )
            emit(buffer.getvalue().rstrip("\n"))
        else:
            from tabulate import tabulate

            table = [
                [
                    r["name"],
                    r["uuid"][:7],
                    "online" if r["online"] else "offline",
                    "yes" if r["vpn"] else "no",
                    r["public_address"] or "-",
                    " ".join(r["local_ips"]) or "-",
                    r["route"] or "UNREACHABLE",
                    r["route_reason"],
                ]
                for r in rows
            ]
            emit(
                tabulate(
                    table,
                    headers=[
                        "device",
                        "uuid",
                        "state",
                        "vpn",
                        "public address",
                        "LAN",
                        "route",
                        "why",
                    ],
                )
            )
