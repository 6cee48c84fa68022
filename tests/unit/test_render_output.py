"""Reports reach stdout in pieces: the same text as the whole-string renderers, fewer copies."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click
import pytest

from orchestrator.cli.common import emit_chunks
from orchestrator.models import DeviceReport, Finding, NetworkKeys, RunSummary
from orchestrator.report.document import run_document
from orchestrator.report.render import FORMATS, render_chunks

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=timezone.utc)


def _reports(count: int) -> list[DeviceReport]:
    clock = Finding(
        code="time.chronyd_stopped",
        category="time",
        severity="critical",
        summary="chronyd is not running: nothing keeps the clock right",
        evidence=('systemctl is-active chronyd -> "inactive"', 'ünïcode "quoted" \\ line'),
        remediation="systemctl start chronyd",
    )
    return [
        DeviceReport(
            uuid=f"{index:032x}",
            name=f"device-{index}",
            reachable=index % 3 != 0,
            route="direct 10.0.0.1:22222",
            error=None if index % 3 else "direct 10.0.0.1:22222: connection refused",
            error_kind=None if index % 3 else "refused",
            findings=(clock,) if index % 2 else (),
            network=NetworkKeys(gateway_ip="10.0.0.1", site="depot-3", labels=("eth",)),
            started_at=T0,
            finished_at=T0,
        )
        for index in range(count)
    ]


@pytest.mark.parametrize("fmt", ["json", "table", "csv"])
def test_chunks_join_to_the_whole_rendering(fmt: str) -> None:
    run = RunSummary(7, "completed", T0, T0, "inventory:x", 300, 200, 100, "Fleet")
    reports = _reports(300)
    text = "".join(render_chunks(fmt, run, reports, []))
    assert text == FORMATS[fmt](run, reports, [])
    if fmt == "json":
        assert text == json.dumps(run_document(run, reports, []), indent=2)
        assert len(list(render_chunks(fmt, run, reports, []))) > 300  # a piece per device at least


def test_chunks_are_written_in_order_in_few_writes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    writes: list[int] = []
    echo = click.echo
    monkeypatch.setattr(
        click, "echo", lambda text, nl=True: (writes.append(len(text)), echo(text, nl=nl))
    )
    pieces = [f"{index}," for index in range(20_000)]
    emit_chunks(iter(pieces), flush_at=10_000)
    assert capsys.readouterr().out == "".join(pieces) + "\n"
    assert 9 <= len(writes) <= 12 and max(writes[:-1]) < 10_010


def test_an_empty_result_is_one_newline(capsys: pytest.CaptureFixture[str]) -> None:
    emit_chunks(iter(()))
    assert capsys.readouterr().out == "\n"
