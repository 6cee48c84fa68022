"""``orch explain``: diagnose pasted text (journals, command output, tickets)."""

from __future__ import annotations

import click

from orchestrator.cli.common import AppState, dumps, emit, handle_errors


def register(group: click.Group) -> None:
    """Add ``explain`` to the CLI."""

    @group.command()
    @click.argument("source", type=click.File("rb"), default="-")
    @click.option(
        "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
    )
    @click.pass_obj
    @handle_errors
    def explain(state: AppState, source, fmt: str) -> None:
        """Name the root cause shown by a log excerpt or command output (FILE, or - for stdin).

        FILE may be gzip-compressed. Exit status: 0 healthy, 1 problems found, 0 inconclusive.
        """
        from orchestrator.cli.pasted import decode_pasted
        from orchestrator.diagnosis.explain import explain_text

        name = getattr(source, "name", "-")
        name = "stdin" if name in ("-", "<stdin>") else name
        result = explain_text(decode_pasted(source.read(), name))
        if fmt == "json":
            emit(dumps(result.to_dict()))
        else:
            lines = [f"verdict: {result.verdict}"]
            for finding in result.findings:
                cause = (
                    f" (caused by {finding.caused_by})" if finding.caused_by else " [root cause]"
                )
                lines.append(f"- {finding.code}{cause}: {finding.summary}")
                for evidence in finding.evidence[:3]:
                    lines.append(f"    > {evidence}")
                if finding.remediation and not finding.caused_by:
                    lines.append(f"    fix: {finding.remediation}")
            emit("\n".join(lines))
        raise SystemExit(1 if result.verdict == "problems" else 0)
