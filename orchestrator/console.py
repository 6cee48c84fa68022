"""The ``orch`` console script: collector settings for a command-line process, then the CLI."""

from __future__ import annotations


def main() -> None:
    """Run the ``orch`` command line (what the installed ``orch`` script calls)."""
    from orchestrator.gc_tuning import command_line_gc, nothing_to_collect_at_exit

    command_line_gc()  # before the imports: they only make objects that live until exit
    from orchestrator.cli import main as cli

    try:
        cli()
    finally:
        nothing_to_collect_at_exit()  # the process ends here (click exits with the status)
