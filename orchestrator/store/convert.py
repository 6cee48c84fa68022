"""Conversions between `orchestrator.models` dataclasses and stored rows, and what gets scrubbed.

Pure functions: no connections, no I/O. Loading is the exact inverse of saving except where a value
cannot be stored as given: step output above the byte cap (cut and flagged `truncated`), NUL
characters and lone surrogates in step output, errors and finding text (PostgreSQL text cannot
hold them; they become U+FFFD), tuples and non-finite floats inside observation values (load as
lists and strings), non-finite step durations and arrival times (load as None) and naive
datetimes (taken as UTC, load as aware UTC).

A device's observations and its steps travel as JSON documents on its result row, the steps'
outputs end to end in one text column (the formats are described in `orchestrator.store.tables`):
`observations_document` and `steps_document` build them, `to_report` reads them back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from orchestrator.models import (
    DeviceReport,
    Finding,
    NetworkFinding,
    NetworkKeys,
    Observation,
    RunSummary,
    StepOutput,
)

if TYPE_CHECKING:
    from sqlalchemy import Row

    from orchestrator.store.schema import DeviceResult, NetworkFindingRow, Run

SECRET_KEY_PARTS: tuple[str, ...] = ("token", "password", "secret", "apikey", "api_key")
"""An option whose key contains one of these (case-insensitive) is never stored."""

_PLAIN_JSON: frozenset[type] = frozenset({str, int, bool, type(None)})
"""Types stored exactly as given inside an observation value (checked by exact type)."""

_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*(?P<tail>@)")


def filter_secrets(value: Any) -> Any:
    """Return `value` as JSON-ready data without secrets.

    Drops mapping keys that look like secrets (at any depth), masks passwords embedded in URLs
    (`postgresql://u:***@host/db`), turns tuples/sets into lists and other objects into strings.
    """
    if isinstance(value, Mapping):
        return {
            str(key): filter_secrets(item)
            for key, item in value.items()
            if not any(part in str(key).lower() for part in SECRET_KEY_PARTS)
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [filter_secrets(item) for item in value]
    if isinstance(value, str):
        return _URL_PASSWORD.sub(r"\g<head>***\g<tail>", value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return filter_secrets(str(value))


def clean_text(text: str) -> str:
    """Make device-produced text storable on every backend (no NUL, valid UTF-8)."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: each becomes U+FFFD
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def cap_text(text: str, max_bytes: int) -> tuple[str, bool]:
    """Cut `text` to at most `max_bytes` UTF-8 bytes on a character boundary; say if it was cut."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text, False
    return encoded[:max_bytes].decode("utf-8", "ignore"), True


def result_values(run_id: int, report: DeviceReport, max_step_bytes: int) -> dict[str, Any]:
    """The `device_results` column values for one device report (no id, no children); each
    step's output is capped at ``max_step_bytes``."""
    net = report.network
    steps, step_output = steps_document(report, max_step_bytes)
    return {
        "run_id": run_id,
        "device_uuid": report.uuid,
        "device_name": report.name,
        "reachable": report.reachable,
        "route": report.route,
        "error": None if report.error is None else clean_text(report.error),
        "error_kind": report.error_kind,
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "output_truncated": report.output_truncated,
        "network_cause": report.network_cause,
        "public_address": net.public_address,
        "gateway_ip": net.gateway_ip,
        "gateway_mac": net.gateway_mac,
        "subnet": net.subnet,
        "site": net.site,
        "labels": list(net.labels),
        "observations": observations_document(report),
        "steps": steps,
        "step_output": step_output,
    }


def device_identity_values(
    fleet: str | None, reports: Iterable[DeviceReport]
) -> list[dict[str, Any]]:
    """The `devices` rows (latest identity) of reported devices, seen when they finished."""
    rows = []
    for report in reports:
        seen = report.finished_at or report.started_at or datetime.now(timezone.utc)
        rows.append(
            {
                "uuid": report.uuid,
                "name": report.name,
                "fleet": fleet,
                "site": report.network.site,
                "labels": list(report.network.labels),
                "public_address": report.network.public_address,
                "first_seen_at": seen,
                "last_seen_at": seen,
            }
        )
    return rows


def storable_output(output: str, max_bytes: int) -> tuple[str, bool]:
    """Step output as stored (`clean_text`, cut to ``max_bytes``) and whether it was cut."""
    # most output is short ASCII text: storable as is, no need to encode it to check
    if output.isascii() and len(output) <= max_bytes and "\x00" not in output:
        return output, False
    return cap_text(clean_text(output), max_bytes)


STEP_COLUMNS = ("name", "exit_code", "duration_s", "received_at", "size")
"""The arrays of a steps document with one entry per step (``size``: the output's length)."""
STEP_FLAGS = ("truncated", "timed_out", "skipped", "missing")
"""The arrays of a steps document listing the positions of the steps with that flag set."""


def steps_document(
    report: DeviceReport, max_bytes: int
) -> tuple[dict[str, list[Any]] | None, str | None]:
    """The report's steps as stored: the column-wise document and the outputs end to end, each
    `storable_output` (None, None when there are no steps).

    Flags are stored as the positions that have them: most steps have none, and every array
    item costs the JSON encoder about as much as a short string.
    """
    if not report.steps:
        return None, None
    names, codes, took, arrived, sizes, outputs = [], [], [], [], [], []
    flagged: dict[str, list[int]] = {flag: [] for flag in STEP_FLAGS}
    for position, step in enumerate(report.steps):
        output, cut = storable_output(step.output, max_bytes)
        names.append(step.name)
        codes.append(step.exit_code)
        took.append(_finite_or_none(step.duration_s))
        arrived.append(_finite_or_none(step.received_at))
        sizes.append(len(output))
        outputs.append(output)
        if step.truncated or cut or step.timed_out or step.skipped or step.missing:
            for flag, set_ in zip(
                STEP_FLAGS,
                (step.truncated or cut, step.timed_out, step.skipped, step.missing),
                strict=True,
            ):
                if set_:
                    flagged[flag].append(position)
    document = dict(zip(STEP_COLUMNS, (names, codes, took, arrived, sizes), strict=True))
    return document | flagged, "".join(outputs)


def steps_from_document(
    document: Mapping[str, list[Any]] | None, text: str | None
) -> tuple[StepOutput, ...]:
    """The steps `steps_document` stored (none when pruned or never stored)."""
    if not document or text is None:
        return ()
    truncated, timed_out, skipped, missing = (set(document[flag]) for flag in STEP_FLAGS)
    steps = []
    end = 0
    for at, (name, code, took, arrived, size) in enumerate(
        zip(*(document[column] for column in STEP_COLUMNS), strict=True)
    ):
        start, end = end, end + size
        steps.append(
            StepOutput(
                name,
                text[start:end],
                code,
                at in truncated,
                at in timed_out,
                at in skipped,
                at in missing,
                took,
                arrived,
            )
        )
    return tuple(steps)


def _finite_or_none(value: float | None) -> float | None:
    """A time as a float JSON can hold (NaN and infinities are not JSON: None)."""
    return None if value is None or not math.isfinite(value) else float(value)


def observations_document(report: DeviceReport) -> dict[str, list[Any]] | None:
    """The report's observations as one JSON-ready document (None when there are none).

    Column-wise, in order: ``{"key": [...], "value": [...], "evidence": [...], "probe": [...]}``
    with each value made portable by `filter_json`; the JSON column serialises it in one call.
    Four lists per device rather than a container per observation: a sweep stores tens of
    thousands of observations, and every container costs allocation and garbage-collector time.
    Evidence tuples are passed as they are (JSON arrays).
    """
    if not report.observations:
        return None
    keys, values, evidence, probes = [], [], [], []
    for o in report.observations:
        value = o.value
        keys.append(o.key)
        # most values are plain (str, int, bool, None): no call needed to know they are portable
        values.append(value if type(value) in _PLAIN_JSON else filter_json(value))
        evidence.append(o.evidence)
        probes.append(o.probe)
    return {"key": keys, "value": values, "evidence": evidence, "probe": probes}


def finding_values(report: DeviceReport) -> list[dict[str, Any]]:
    """The `findings` column values (without `result_id`) of a report, in order."""
    return [
        {
            "position": position,
            "code": f.code,
            "category": f.category,
            "severity": f.severity,
            "summary": clean_text(f.summary),
            "evidence": list(f.evidence),
            "remediation": clean_text(f.remediation),
            "caused_by": f.caused_by,
            "is_root_cause": f.caused_by is None,
        }
        for position, f in enumerate(report.findings)
    ]


def filter_json(value: Any) -> Any:
    """An observation value as portable JSON data.

    Tuples become lists, unknown objects strings, and NaN/infinity their `repr` (PostgreSQL
    JSON has no such numbers). Plain values are checked by exact type first: they are most of
    what probes observe.
    """
    kind = type(value)
    if kind in _PLAIN_JSON:
        return value
    if kind is float:
        return value if math.isfinite(value) else repr(value)
    if kind is list or kind is tuple:
        return [filter_json(v) for v in value]
    if kind is dict:
        return {k if type(k) is str else str(k): filter_json(v) for k, v in value.items()}
    if isinstance(value, Mapping):
        return {str(k): filter_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [filter_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def network_finding_values(run_id: int, position: int, finding: NetworkFinding) -> dict[str, Any]:
    """The `network_findings` column values of one network-wide finding."""
    return {
        "run_id": run_id,
        "position": position,
        "kind": finding.kind,
        "value": finding.value,
        "category": finding.category,
        "code": finding.code,
        "devices": list(finding.devices),
        "affected": finding.affected,
        "total": finding.total,
        "summary": finding.summary,
        "remediation": finding.remediation,
        "unreachable": finding.unreachable,
    }


def to_report(row: DeviceResult) -> DeviceReport:
    """The dataclass for a stored device result (relationships must be loaded)."""
    return report_from_result(
        row,
        findings=tuple(finding_from_row(f) for f in row.findings),
        observations=observations_from_document(row.observations),
        steps=steps_from_document(row.steps, row.step_output),
    )


def report_from_result(
    row: Any,
    *,
    findings: tuple[Finding, ...],
    observations: tuple[Observation, ...] = (),
    steps: tuple[StepOutput, ...] = (),
) -> DeviceReport:
    """A report from the columns of a ``device_results`` row (a mapped object or a Core row)."""
    return DeviceReport(
        uuid=row.device_uuid,
        name=row.device_name,
        reachable=row.reachable,
        route=row.route,
        error=row.error,
        error_kind=row.error_kind,
        findings=findings,
        observations=observations,
        steps=steps,
        network=NetworkKeys(
            public_address=row.public_address,
            gateway_ip=row.gateway_ip,
            gateway_mac=row.gateway_mac,
            subnet=row.subnet,
            site=row.site,
            labels=tuple(row.labels),
        ),
        started_at=row.started_at,
        finished_at=row.finished_at,
        output_truncated=row.output_truncated,
        network_cause=row.network_cause,
    )


def finding_from_row(row: Any) -> Finding:
    """A finding from the columns of a ``findings`` row (a mapped object or a Core row)."""
    return Finding(
        code=row.code,
        category=row.category,
        severity=row.severity,
        summary=row.summary,
        evidence=tuple(row.evidence),
        remediation=row.remediation,
        caused_by=row.caused_by,
    )


def observations_from_document(document: dict[str, list[Any]] | None) -> tuple[Observation, ...]:
    """The observations stored by `observations_document` (None: there are none)."""
    if not document:
        return ()
    return tuple(
        Observation(key=key, value=value, evidence=tuple(evidence), probe=probe)
        for key, value, evidence, probe in zip(
            document["key"], document["value"], document["evidence"], document["probe"], strict=True
        )
    )


def to_network_finding(row: NetworkFindingRow) -> NetworkFinding:
    """The dataclass for a stored network finding."""
    return NetworkFinding(
        kind=row.kind,
        value=row.value,
        category=row.category,
        code=row.code,
        devices=tuple(row.devices),
        affected=row.affected,
        total=row.total,
        summary=row.summary,
        remediation=row.remediation,
        unreachable=row.unreachable,
    )


def to_summary(
    row: Run | Row[Any], *, reached: int | None = None, with_problems: int | None = None
) -> RunSummary:
    """The dataclass for a stored run (an ORM `Run` or a Core row of `runs`); counts may be
    overridden with live values."""
    started: datetime = row.started_at
    return RunSummary(
        id=row.id,
        status=row.status,
        started_at=started,
        finished_at=row.finished_at,
        source=row.source,
        devices_total=row.devices_total,
        devices_reached=row.devices_reached if reached is None else reached,
        devices_with_problems=row.devices_with_problems if with_problems is None else with_problems,
        fleet=row.fleet,
    )
