"""``orch diagnose``: run the probe suite over a fleet and store the run."""

from __future__ import annotations

from typing import Any

import click

from orchestrator.cli.common import (
    EXIT_FAILED,
    FORMAT_CHOICES,
    AppState,
    emit_chunks,
    handle_errors,
)
from orchestrator.report.terminal import inert
from orchestrator.vocabulary import ROUTE_MODES


def register(group: click.Group) -> None:
    """Add ``diagnose`` to the CLI."""

    @group.command()
    @click.option(
        "--demo",
        is_flag=True,
        help="Diagnose the embedded demo fleet (simulated devices over real SSH).",
    )
    @click.option(
        "--demo-devices",
        type=click.IntRange(1, 20000),
        help="A generated mixed demo fleet of N simulated devices instead of the 13 scenarios.",
    )
    @click.option(
        "--inventory",
        type=click.Path(exists=True, dir_okay=False),
        help="Inventory file (YAML or JSON) of devices to reach directly.",
    )
    @click.option("--fleet", multiple=True, help="balena fleet slug or id (repeatable).")
    @click.option("--all-fleets", is_flag=True, help="Every fleet the balena token can see.")
    @click.option(
        "--device",
        multiple=True,
        help="Only these devices (uuid, 7+ char uuid prefix, or name; repeatable).",
    )
    @click.option(
        "--probe", multiple=True, help="Only these probes (repeatable; see `orch probes`)."
    )
    @click.option(
        "--concurrency",
        type=click.IntRange(1, 10000),
        help="Devices diagnosed at once (default from config: 100).",
    )
    @click.option(
        "--timeout",
        type=click.FloatRange(1, 3600),
        help="Per-device deadline in seconds (default 120).",
    )
    @click.option(
        "--route", type=click.Choice(ROUTE_MODES), help="Force a route kind (default auto)."
    )
    @click.option(
        "--key",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False),
        help="SSH private key file (repeatable).",
    )
    @click.option(
        "--known-hosts",
        type=click.Path(dir_okay=False),
        help="known_hosts file to verify device host keys.",
    )
    @click.option(
        "--insecure-no-host-key-check",
        is_flag=True,
        help="DANGEROUS: do not verify device host keys (anyone on the path can impersonate a device).",
    )
    @click.option(
        "--db",
        help="Database URL (default: ORCH_DB_URL, config, then a SQLite file in the user data dir).",
    )
    @click.option(
        "--workers",
        is_flag=True,
        help="Split the sweep into shard jobs for `orch worker` processes (needs PostgreSQL --db).",
    )
    @click.option(
        "--shard-size",
        type=click.IntRange(1, 100000),
        default=250,
        show_default=True,
        help="Devices per shard job with --workers.",
    )
    @click.option("--format", "fmt", type=FORMAT_CHOICES, default="table", show_default=True)
    @click.pass_obj
    @handle_errors
    def diagnose(state: AppState, fmt: str, **params: Any) -> None:
        """Diagnose every device of a fleet and store the run.

        Exit status: 0 all healthy, 1 problems found, 2 usage or config error, 3 run failed.
        """
        import asyncio

        from orchestrator.cli.diagnose_run import exit_code_for, run_diagnose
        from orchestrator.cli.progress import ProgressBar
        from orchestrator.report.render import render_chunks

        runner = run_diagnose
        if params.pop("workers"):
            from orchestrator.cli.worker import run_diagnose_on_workers as runner
        result: list[Any] = []

        async def main() -> None:
            # the outcome stays out of the main task's result: asyncio's SIGINT restore at exit
            # formats that task's repr, which would render every report of the run
            result.append(await runner(state, params, ProgressBar))

        try:
            asyncio.run(main())
            outcome = result[0]
        except (KeyboardInterrupt, asyncio.CancelledError):
            click.echo(
                "orch: interrupted: finished devices are saved; the run is marked interrupted",
                err=True,
            )
            raise SystemExit(EXIT_FAILED) from None
        for warning in outcome.warnings:
            click.echo(inert(f"orch: warning: {warning}"), err=True)
        emit_chunks(
            render_chunks(fmt, outcome.run, outcome.reports, outcome.network_findings),
            escaped=fmt == "json",
        )
        raise SystemExit(exit_code_for(outcome))
