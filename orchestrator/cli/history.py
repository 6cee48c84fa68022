"""``orch runs`` and ``orch show``: read stored runs back."""

from __future__ import annotations

import click

from orchestrator.cli.common import (
    FORMAT_CHOICES,
    AppState,
    dumps,
    emit,
    emit_chunks,
    handle_errors,
    parse_since,
)
from orchestrator.vocabulary import CATEGORIES


def register(group: click.Group) -> None:
    """Add ``runs`` and ``show`` to the CLI."""

    @group.command()
    @click.option("--fleet", help="Only runs of this fleet.")
    @click.option(
        "--status",
        type=click.Choice(["running", "completed", "interrupted", "failed"]),
        help="Only runs in this state.",
    )
    @click.option("--since", help="Only runs started since (7d, 12h, or an ISO date).")
    @click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True)
    @click.option("--db", help="Database URL.")
    @click.option("--format", "fmt", type=FORMAT_CHOICES, default="table", show_default=True)
    @click.pass_obj
    @handle_errors
    def runs(
        state: AppState,
        fleet: str | None,
        status: str | None,
        since: str | None,
        limit: int,
        db: str | None,
        fmt: str,
    ) -> None:
        """List stored runs, newest first."""
        from tabulate import tabulate

        from orchestrator.report.document import run_dict

        store = state.open_store(db, create=False)
        try:
            found = store.list_runs(
                fleet=fleet, status=status, since=parse_since(since), limit=limit
            )
        finally:
            store.close()
        rows = [
            {**run_dict(r), "fleet": r.fleet, "devices_with_problems": r.devices_with_problems}
            for r in found
        ]
        if fmt == "json":
            emit(dumps(rows))
        elif fmt == "csv":
            import csv
            import io

            buffer = io.StringIO()
            fields = [
                "id",
                "status",
                "started_at",
                "finished_at",
                "source",
                "fleet",
                "devices_total",
                "devices_reached",
                "devices_with_problems",
            ]
            writer = csv.DictWriter(
                buffer, fieldnames=fields, extrasaction="ignore", lineterminator="\n"
            )
            writer.writeheader()
            writer.writerows(rows)
            emit(buffer.getvalue().rstrip("\n"))
        else:
            table = [
                [
                    r["id"],
                    r["status"],
                    r["started_at"][:19],
                    r["source"],
                    r["fleet"] or "-",
                    f"{r['devices_reached']}/{r['devices_total']}",
                    r["devices_with_problems"],
                ]
                for r in rows
            ]
            emit(
                tabulate(
                    table,
                    headers=[
                        "run",
                        "status",
                        "started (UTC)",
                        "source",
                        "fleet",
                        "reached",
                        "problems",
                    ],
                )
                if table
                else "no runs stored yet"
            )

    @group.command()
    @click.argument("run_id", type=int, required=False)
    @click.option(
        "--category",
        type=click.Choice(CATEGORIES),
        help="Only devices with a problem of this category.",
    )
    @click.option("--code", help="Only devices with this finding code (e.g. firewall.tcp_dropped).")
    @click.option(
        "--network",
        help="Only devices on this network, KIND:VALUE (lan, public_address, site, label), "
        "or listed in its network finding.",
    )
    @click.option(
        "--reachable/--unreachable",
        "reachable",
        default=None,
        help="Only devices that were (not) reached.",
    )
    @click.option("--db", help="Database URL.")
    @click.option("--format", "fmt", type=FORMAT_CHOICES, default="table", show_default=True)
    @click.pass_obj
    @handle_errors
    def show(
        state: AppState,
        run_id: int | None,
        category: str | None,
        code: str | None,
        network: str | None,
        reachable: bool | None,
        db: str | None,
        fmt: str,
    ) -> None:
        """Show one stored run (default: the latest) exactly as `diagnose` printed it.

        Filters select devices only; the document keeps its shape and network findings.
        """
        from orchestrator.errors import UsageError
        from orchestrator.history_models import on_network, parse_network
        from orchestrator.report.render import render_chunks

        try:
            wanted_network = parse_network(network) if network else None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        store = state.open_store(db, create=False)
        try:
            if run_id is None:
                run_id = store.latest_run_id()
                if run_id is None:
                    raise UsageError("no runs stored yet: run `orch diagnose` first")
            run = store.get_run(run_id)
            reports = store.load_reports_where(
                run_id, category=category, code=code, reachable=reachable
            )
            findings = store.load_network_findings(run_id)
        finally:
            store.close()
        if wanted_network is not None:
            kind, value = wanted_network
            reports = [r for r in reports if on_network(r, kind, value, findings)]
        emit_chunks(render_chunks(fmt, run, reports, findings), escaped=fmt == "json")
