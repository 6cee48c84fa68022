"""Render a run as table, JSON or CSV text (pure: returns strings, or JSON as chunks)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence

from orchestrator.models import DeviceReport, NetworkFinding, RunSummary
from orchestrator.report.document import run_document, sort_reports
from orchestrator.report.json_text import indented_chunks

Renderer = Callable[[RunSummary, Sequence[DeviceReport], Sequence[NetworkFinding]], str]


def render_json(
    run: RunSummary, reports: Sequence[DeviceReport], network: Sequence[NetworkFinding]
) -> str:
    """The documented JSON document, indented."""
    return "".join(stream_json(run, reports, network))


def stream_json(
    run: RunSummary, reports: Sequence[DeviceReport], network: Sequence[NetworkFinding]
) -> Iterator[str]:
    """``render_json``'s text in pieces: a 100,000-device run never holds it whole (~100 MB)."""
    return indented_chunks(run_document(run, reports, network))


def _cause_text(report: DeviceReport) -> str:
    if not report.reachable:
        return report.error or "unreachable"
    roots = [f for f in report.findings if f.caused_by is None and f.severity != "info"]
    if not roots:
        return "healthy"
    return "; ".join(f"{f.code}: {f.summary}" for f in roots)


def render_table(
    run: RunSummary, reports: Sequence[DeviceReport], network: Sequence[NetworkFinding]
) -> str:
    """A human summary: run header, network findings, then devices grouped by network cause."""
    from tabulate import tabulate  # 90 ms to import: only for table output

    lines = [
        f"run {run.id} ({run.status}) source {run.source}: "
        f"{run.devices_reached}/{run.devices_total} devices reached",
    ]
    if network:
        lines.append("")
        lines.append("Network issues:")
        rows = [
            [f"{n.kind} {n.value}", n.code, f"{n.affected}/{n.total}", n.summary] for n in network
        ]
        lines.append(tabulate(rows, headers=["network", "code", "devices", "summary"]))
    rows = []
    for report in sort_reports(reports):
        route = (report.route or "-").split(" ")[0]
        cause = _cause_text(report)
        if report.network_cause:
            cause = f"{report.network_cause} [{', '.join(report.root_causes)}]"
        rows.append([report.name, "yes" if report.reachable else "NO", route, cause])
    lines.append("")
    lines.append(tabulate(rows, headers=["device", "reached", "route", "root cause"]))
    return "\n".join(lines)


def render_csv(
    run: RunSummary, reports: Sequence[DeviceReport], network: Sequence[NetworkFinding]
) -> str:
    """One row per device."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["run_id", "uuid", "name", "reachable", "route", "error", "root_causes", "network_cause"]
    )
    for report in sort_reports(reports):
        writer.writerow(
            [
                run.id,
                report.uuid,
                report.name,
                str(report.reachable).lower(),
                report.route or "",
                report.error or "",
                " ".join(report.root_causes),
                report.network_cause or "",
            ]
        )
    return buffer.getvalue()


FORMATS: dict[str, Renderer] = {"table": render_table, "json": render_json, "csv": render_csv}


def render_chunks(
    fmt: str, run: RunSummary, reports: Sequence[DeviceReport], network: Sequence[NetworkFinding]
) -> Iterable[str]:
    """The run in format ``fmt`` as pieces of text to write one after another."""
    if fmt == "json":
        return stream_json(run, reports, network)
    return (FORMATS[fmt](run, reports, network),)
