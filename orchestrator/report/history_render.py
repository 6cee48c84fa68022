"""Render history answers (`orch history`, `patterns`, `diff`, `db prune`) as table, JSON or CSV.

Pure: dataclasses in, strings out. JSON shapes are documented in the README.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tabulate import tabulate

from orchestrator.history_models import DeviceHistory, PatternReport, PruneResult, RunDiff
from orchestrator.report.document import run_dict

CHANGED_MARK = "*"
NETWORK_PREFIX = "network issue, not this device: "


def _when(value: datetime | None) -> str:
    return value.isoformat()[:19].replace("T", " ") if value is not None else "-"


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _codes(codes: Sequence[str] | None) -> str:
    return ", ".join(codes) if codes else "healthy"


def _short_network(cause: str | None) -> str:
    """The network statement without its fixed prefix, cut for a table cell."""
    if not cause:
        return ""
    text = cause.removeprefix(NETWORK_PREFIX)
    return text if len(text) <= 70 else text[:67] + "..."


def history_document(found: DeviceHistory) -> dict[str, Any]:
    """`{"device": {uuid, name, fleet}, "results": [...]}`, results newest first."""
    device = found.device
    return {
        "device": {"uuid": device.uuid, "name": device.name, "fleet": device.fleet},
        "results": [entry.to_dict() for entry in found.entries],
    }


def render_history(found: DeviceHistory, fmt: str) -> str:
    """A device's results over time; a `*` marks runs whose root causes changed."""
    if fmt == "json":
        return json.dumps(history_document(found), indent=2)
    if fmt == "csv":
        rows = [
            [
                found.device.uuid,
                e.run_id,
                e.started_at.isoformat(),
                str(e.reachable).lower(),
                e.route_kind or "",
                " ".join(e.root_causes),
                e.network_cause or "",
                str(e.changed).lower(),
            ]
            for e in found.entries
        ]
        header = ["uuid", "run_id", "started_at", "reachable", "route", "root_causes"]
        return _csv([*header, "network_cause", "changed"], rows)
    title = f"device {found.device.name} ({found.device.uuid})"
    if not found.entries:
        return f"{title}: no stored results match"
    rows = []
    for e in found.entries:
        cause = _codes(e.root_causes) if e.reachable else f"unreachable: {_codes(e.root_causes)}"
        change = ""
        if e.changed:
            change = f"{CHANGED_MARK} was {_codes(e.previous_root_causes)}"
        rows.append(
            [
                e.run_id,
                _when(e.started_at),
                "yes" if e.reachable else "NO",
                e.route_kind or "-",
                cause,
                _short_network(e.network_cause),
                change,
            ]
        )
    headers = ["run", "started (UTC)", "reached", "route", "root causes", "network", "change"]
    return f"{title}\n\n{tabulate(rows, headers=headers)}"


def render_patterns(report: PatternReport, fmt: str) -> str:
    """Network findings with status and first/last seen; JSON is a list of objects."""
    records = [record.to_dict() for record in report.records]
    if fmt == "json":
        return json.dumps(records, indent=2)
    if fmt == "csv":
        header = ["run_id", "status", "kind", "value", "category", "code", "affected", "total"]
        rows = [
            [
                report.run.id,
                r["status"],
                r["network"]["kind"],
                r["network"]["value"],
                r["category"],
                r["code"],
                r["affected"],
                r["total"],
                r["first_seen"] or "",
                r["last_seen"] or "",
                " ".join(r["devices"]),
                r["summary"],
            ]
            for r in records
        ]
        return _csv([*header, "first_seen", "last_seen", "devices", "summary"], rows)
    compared = f"compared with run {report.previous.id}" if report.previous else "no earlier run"
    title = f"run {report.run.id} ({report.run.source}), {compared}"
    if not records:
        return f"{title}: no network findings"
    rows = [
        [
            r.status,
            f"{r.finding.kind} {r.finding.value}",
            r.finding.code,
            f"{r.finding.affected}/{r.finding.total}",
            _when(r.first_seen),
            _when(r.last_seen),
            r.finding.summary,
        ]
        for r in report.records
    ]
    headers = ["status", "network", "code", "devices", "first seen", "last seen", "summary"]
    return f"{title}\n\n{tabulate(rows, headers=headers)}"


def diff_document(diff: RunDiff) -> dict[str, Any]:
    """`{"before": run, "after": run, "devices": [...], "networks": [...], "unchanged": N}`."""
    return {
        "before": run_dict(diff.before),
        "after": run_dict(diff.after),
        "devices": [change.to_dict() for change in diff.devices],
        "networks": [change.to_dict() for change in diff.networks],
        "unchanged": diff.unchanged,
    }


def render_diff(diff: RunDiff, fmt: str) -> str:
    """What got worse or better from one run to another, devices then networks."""
    if fmt == "json":
        return json.dumps(diff_document(diff), indent=2)
    if fmt == "csv":
        rows: list[list[Any]] = [
            ["device", c.direction, c.uuid, c.name, "; ".join(c.reasons)] for c in diff.devices
        ]
        rows += [
            [
                "network",
                n.status,
                f"{n.kind}:{n.value}",
                n.code,
                f"{n.affected_before} -> {n.affected_after}",
            ]
            for n in diff.networks
        ]
        return _csv(["what", "change", "id", "name_or_code", "details"], rows)
    lines = [
        f"run {diff.before.id} -> run {diff.after.id}: {len(diff.devices)} devices changed, "
        f"{diff.unchanged} unchanged"
    ]
    if diff.devices:
        rows = [[c.direction, c.name, c.uuid[:12], "; ".join(c.reasons)] for c in diff.devices]
        lines += ["", tabulate(rows, headers=["change", "device", "uuid", "why"])]
    if diff.networks:
        rows = [
            [
                n.status,
                f"{n.kind} {n.value}",
                n.code,
                f"{n.affected_before} -> {n.affected_after}",
            ]
            for n in diff.networks
        ]
        lines += ["", "Networks:", tabulate(rows, headers=["change", "network", "code", "devices"])]
    return "\n".join(lines)


def render_prune(result: PruneResult, cutoff: datetime) -> str:
    """One line saying what `orch db prune` removed."""
    when = _when(cutoff)
    if result.whole_runs:
        return (
            f"removed {result.runs} runs started before {when} UTC: "
            f"{result.device_results} device results, {result.findings} findings, "
            f"{result.network_findings} network findings, step outputs of "
            f"{result.step_outputs} devices, observations of {result.observations} devices"
        )
    return (
        f"pruned {result.runs} runs started before {when} UTC: removed the step outputs of "
        f"{result.step_outputs} devices and the observations of {result.observations} "
        "devices (runs, device results and findings kept)"
    )
