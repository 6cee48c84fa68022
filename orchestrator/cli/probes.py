"""``orch probes``: every probe and the exact commands it runs on a device."""

from __future__ import annotations

import click

from orchestrator.cli.common import AppState, dumps, emit, handle_errors


def register(group: click.Group) -> None:
    """Add ``probes`` to the CLI."""

    @group.command()
    @click.option(
        "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
    )
    @click.pass_obj
    @handle_errors
    def probes(state: AppState, fmt: str) -> None:
        """List every probe with the exact read-only commands it runs (for the configured endpoints)."""
        from orchestrator.probes.registry import PROBES
        from orchestrator.sweep import endpoints_from

        endpoints = endpoints_from(state.config)
        listing = [
            {
                "name": probe.name,
                "description": probe.description,
                "steps": [
                    {
                        "name": s.name,
                        "command": s.command,
                        "timeout_s": s.timeout_s,
                        "max_bytes": s.max_bytes,
                        "env": dict(s.env),
                    }
                    for s in probe.steps_for(endpoints)
                ],
            }
            for probe in PROBES
        ]
        if fmt == "json":
            emit(dumps(listing))
            return
        lines = []
        exported: dict[str, str] = {}
        for probe in listing:
            lines.append(f"{probe['name']}: {probe['description']}")
            for step in probe["steps"]:
                lines.append(
                    f"  {step['name']} (limit {step['timeout_s']:g}s, {step['max_bytes']} bytes)"
                )
                lines.append(f"    $ {step['command']}")
                exported.update(step["env"])
            lines.append("")
        for name, value in exported.items():
            lines.append(f"Exported by the script to every step, {name} (one string per line):")
            lines.extend(f"    {line}" for line in value.splitlines())
        emit("\n".join(lines).rstrip())
