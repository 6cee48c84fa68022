"""``orch history``, ``orch patterns`` and ``orch diff``: what changed, when, and where."""

from __future__ import annotations

import click

from orchestrator.cli.common import FORMAT_CHOICES, AppState, emit, handle_errors, parse_since
from orchestrator.vocabulary import CATEGORIES


def register(group: click.Group) -> None:
    """Add ``history``, ``patterns`` and ``diff`` to the CLI."""

    @group.command()
    @click.argument("device")
    @click.option("--since", help="Only runs started since (7d, 12h, or an ISO date).")
    @click.option(
        "--category",
        type=click.Choice(CATEGORIES),
        help="Only runs where the device had a problem of this category.",
    )
    @click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
    @click.option("--db", help="Database URL.")
    @click.option("--format", "fmt", type=FORMAT_CHOICES, default="table", show_default=True)
    @click.pass_obj
    @handle_errors
    def history(
        state: AppState,
        device: str,
        since: str | None,
        category: str | None,
        limit: int,
        db: str | None,
        fmt: str,
    ) -> None:
        """One device's results over time, newest first, root-cause changes marked `*`.

        DEVICE is a uuid, a uuid prefix of 7+ characters, or a device name. A run is marked
        changed when the device's root causes or reachability differ from its previous run.
        """
        from orchestrator.report.history_render import render_history

        store = state.open_store(db, create=False)
        try:
            found = store.device_history(
                device, since=parse_since(since), category=category, limit=limit
            )
        finally:
            store.close()
        emit(render_history(found, fmt))

    @group.command()
    @click.argument("run_id", type=int, required=False)
    @click.option("--fleet", help="Without RUN_ID: the latest run of this fleet.")
    @click.option(
        "--since",
        default="30d",
        show_default=True,
        help="How far back first seen / last seen look (7d, 12h, or an ISO date).",
    )
    @click.option("--db", help="Database URL.")
    @click.option("--format", "fmt", type=FORMAT_CHOICES, default="table", show_default=True)
    @click.pass_obj
    @handle_errors
    def patterns(
        state: AppState,
        run_id: int | None,
        fleet: str | None,
        since: str,
        db: str | None,
        fmt: str,
    ) -> None:
        """Network-wide findings of a run (default: the latest) across runs.

        Each finding is `new` (not in the previous completed run of the same source and fleet),
        `ongoing` (also there) or `resolved` (there, gone now), with when it was first and last
        seen.
        """
        from orchestrator.report.history_render import render_patterns

        store = state.open_store(db, create=False)
        try:
            report = store.network_patterns(run_id, since=parse_since(since), fleet=fleet)
        finally:
            store.close()
        emit(render_patterns(report, fmt))

    @group.command()
    @click.argument("run_a", type=int)
    @click.argument("run_b", type=int)
    @click.option("--db", help="Database URL.")
    @click.option("--format", "fmt", type=FORMAT_CHOICES, default="table", show_default=True)
    @click.pass_obj
    @handle_errors
    def diff(state: AppState, run_a: int, run_b: int, db: str | None, fmt: str) -> None:
        """Devices and networks that got worse or better from RUN_A to RUN_B.

        Worse: a healthy device with a problem, a new root cause, a device no longer reachable,
        a new or wider network finding. Better: the reverse. Devices in only one run are listed
        as added or removed.
        """
        from orchestrator.report.history_render import render_diff

        store = state.open_store(db, create=False)
        try:
            found = store.diff_runs(run_a, run_b)
        finally:
            store.close()
        emit(render_diff(found, fmt))
