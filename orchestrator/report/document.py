"""The documented JSON document of a run (``diagnose`` and ``show`` print exactly this)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from orchestrator.models import DeviceReport, NetworkFinding, RunSummary


def iso(value: datetime | None) -> str | None:
    """ISO 8601 text of an aware datetime, or None."""
    return value.isoformat() if value is not None else None


def run_dict(run: RunSummary) -> dict[str, Any]:
    """The ``run`` object."""
    return {
        "id": run.id,
        "status": run.status,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "source": run.source,
        "devices_total": run.devices_total,
        "devices_reached": run.devices_reached,
    }


def device_dict(report: DeviceReport) -> dict[str, Any]:
    """One entry of ``devices``."""
    return {
        "uuid": report.uuid,
        "name": report.name,
        "reachable": report.reachable,
        "route": report.route,
        "error": report.error,
        "root_causes": list(report.root_causes),
        "network_cause": report.network_cause,
        "findings": [finding.to_dict() for finding in report.findings],
    }


def sort_reports(reports: Sequence[DeviceReport]) -> list[DeviceReport]:
    """Stable presentation order: by name, then uuid."""
    return sorted(reports, key=lambda r: (r.name, r.uuid))


def run_document(
    run: RunSummary, reports: Sequence[DeviceReport], network: Sequence[NetworkFinding]
) -> dict[str, Any]:
    """The whole document: ``run``, ``devices`` and ``network_findings``."""
    return {
        "run": run_dict(run),
        "devices": [device_dict(r) for r in sort_reports(reports)],
        "network_findings": [finding.to_dict() for finding in network],
    }
