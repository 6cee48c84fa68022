"""The ``orch`` command line: a thin click layer over the library.

Exit codes: 0 healthy, 1 problems found, 2 usage or configuration error, 3 the run failed.
Heavy modules (asyncssh, SQLAlchemy, balena-sdk, alembic) are imported inside the commands
that use them, so ``orch --help`` stays fast.
"""

from __future__ import annotations

import click

from orchestrator.cli.common import AppState


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (default: $ORCH_CONFIG, then the user config dir's orch.toml).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.version_option(package_name="orch", prog_name="orch")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, debug: bool) -> None:
    """orch: fleet-wide network diagnostics for balena devices.

    Reach every device over SSH, run read-only probes, name each device's root cause,
    store every run, and flag problems shared by a whole network.
    """
    ctx.obj = AppState(config_path, debug)


def _register() -> None:
    from orchestrator.cli import db, devices, diagnose, explain, history, incidents, probes, worker

    for module in (diagnose, devices, history, incidents, probes, db, explain, worker):
        module.register(main)


_register()
