"""Device reports and network findings read back exactly as saved, on both databases."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import create_engine, func, select

from orchestrator.models import DeviceReport, NetworkFinding, StepOutput
from orchestrator.store import Store
from orchestrator.store.schema import DeviceResult, DeviceRow, FindingRow
from orchestrator.sweep import slim


def _count(db_url: str, column: Any) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(func.count(column))).scalar_one()
    finally:
        engine.dispose()


def test_rich_reports_round_trip_exactly(store: Store, make_report, make_unreachable) -> None:
    reports = [make_report(), make_unreachable(), make_report("c0ffee", "demo-healthy")]
    run_id = store.start_run(source="inventory", fleet="DebugFleet", devices_total=3, options={})
    store.save_reports(run_id, reports[:1])
    store.save_reports(run_id, reports[1:])

    loaded = store.load_reports(run_id)

    assert loaded == reports
    first = loaded[0]
    assert [f.caused_by for f in first.findings] == [
        None,
        "time.chrony_stopped",
        "vpn.tls_not_yet_valid",
        None,
    ]
    assert first.root_causes == ("time.chrony_stopped", "dns.ok")
    assert isinstance(first.observations[0].value, float)
    assert first.observations[1].value == {"running": False, "sources": [], "stratum": None}
    assert first.started_at.tzinfo is not None and first.started_at == reports[0].started_at


def test_saving_a_device_again_replaces_it(store: Store, db_url: str, make_report) -> None:
    run_id = store.start_run(source="demo", fleet=None, devices_total=1, options={})
    original = make_report()
    store.save_reports(run_id, [original])
    fixed = dataclasses.replace(original, findings=original.findings[3:], steps=(), route="direct")
    store.save_reports(run_id, [fixed])
    store.save_reports(run_id, [fixed])

    assert store.load_reports(run_id) == [fixed]
    assert _count(db_url, DeviceResult.id) == 1
    assert _count(db_url, FindingRow.id) == 1
    assert _count(db_url, DeviceResult.step_output) == 0  # no steps: no document
    assert _count(db_url, DeviceResult.steps) == 0
    assert _count(db_url, DeviceRow.id) == 1


def test_duplicate_devices_in_one_call_keep_the_last(store: Store, make_report) -> None:
    run_id = store.start_run(source="demo", fleet=None, devices_total=1, options={})
    first = make_report()
    second = dataclasses.replace(first, reachable=False, error="lost")
    store.save_reports(run_id, [first, second])
    assert store.load_reports(run_id) == [second]


def test_step_output_is_capped_and_flagged(db_url: str, make_report) -> None:
    with Store.open(db_url, require_head=False, max_step_output_bytes=1000) as store:
        store.upgrade()
        run_id = store.start_run(source="demo", fleet=None, devices_total=1, options={})
        steps = (
            StepOutput("big", "A" * 5000, 0),
            StepOutput("euro", "€" * 400, 0),
            StepOutput("exact", "B" * 1000, 0),
            StepOutput("nul", "before\x00after", 0),
        )
        store.save_reports(run_id, [dataclasses.replace(make_report(), steps=steps)])
        big, euro, exact, nul = store.load_reports(run_id)[0].steps
    assert (big.output, big.truncated) == ("A" * 1000, True)
    assert (euro.output, euro.truncated) == ("€" * 333, True)
    assert (exact.output, exact.truncated) == ("B" * 1000, False)
    assert nul.output == "before\ufffdafter"


def test_non_finite_observation_values_are_kept_as_text(store: Store, make_report) -> None:
    report = make_report()
    odd = dataclasses.replace(
        report.observations[0], value={"offset": float("nan"), "limit": float("inf")}
    )
    run_id = store.start_run(source="demo", fleet=None, devices_total=1, options={})
    store.save_reports(run_id, [dataclasses.replace(report, observations=(odd,))])
    assert store.load_reports(run_id)[0].observations[0].value == {
        "offset": "nan",
        "limit": "inf",
    }


def test_network_findings_round_trip_and_replace(store: Store) -> None:
    run_id = store.start_run(source="demo", fleet="f", devices_total=12, options={})
    vpn = NetworkFinding(
        kind="public_address",
        value="203.0.113.7",
        category="vpn",
        code="vpn.blocked",
        devices=("d1", "d2", "d3", "d4"),
        affected=4,
        total=4,
        summary="network 203.0.113.7 (site: depot-3) blocks UDP 1194: 4 of 4 devices",
        remediation="allow outbound UDP 1194 and TCP 443 to the VPN endpoint",
    )
    dark = dataclasses.replace(vpn, kind="site", value="depot-9", unreachable=True)
    store.save_network_findings(run_id, [vpn, dark])
    assert store.load_network_findings(run_id) == [vpn, dark]
    store.save_network_findings(run_id, [dark])
    assert store.load_network_findings(run_id) == [dark]
    store.save_network_findings(run_id, [])
    assert store.load_network_findings(run_id) == []


def test_devices_table_keeps_the_latest_identity(store: Store, db_url: str, make_report) -> None:
    older = make_report()
    run_a = store.start_run(source="demo", fleet="fleet-a", devices_total=1, options={})
    store.save_reports(run_a, [older])
    newer_time = older.finished_at.replace(year=2027)
    renamed = dataclasses.replace(older, name="renamed", finished_at=newer_time)
    run_b = store.start_run(source="demo", fleet="fleet-b", devices_total=1, options={})
    store.save_reports(run_b, [renamed])
    store.save_reports(run_a, [older])

    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(DeviceRow.name, DeviceRow.fleet, DeviceRow.first_seen_at, DeviceRow.labels)
            ).all()
    finally:
        engine.dispose()
    assert len(rows) == 1
    name, fleet, first_seen, labels = rows[0]
    assert (name, fleet, labels) == ("renamed", "fleet-b", ["east", "pilot"])
    assert first_seen == older.finished_at


def test_unicode_and_empty_report(store: Store) -> None:
    report = DeviceReport(uuid="u-ü", name="кухня-1", reachable=True)
    run_id = store.start_run(source="demo", fleet=None, devices_total=1, options={})
    store.save_reports(run_id, [report])
    assert store.load_reports(run_id) == [report]


def _stored_steps(db_url: str) -> tuple[dict[str, Any], str]:
    """The one stored result's steps document and outputs, as the database holds them."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            document, text = connection.execute(
                select(DeviceResult.steps, DeviceResult.step_output)
            ).one()
    finally:
        engine.dispose()
    return document, text


def test_steps_are_one_document_and_one_text_per_device(
    store: Store, db_url: str, make_report
) -> None:
    """Flags list the positions that have them, and the outputs end to end split back at the
    stored sizes."""
    report = make_report()
    run_id = store.start_run(source="inventory", fleet=None, devices_total=1, options={})
    store.save_reports(run_id, [report])
    document, text = _stored_steps(db_url)
    assert document["name"] == [step.name for step in report.steps]
    flagged = {
        flag: {document["name"][position] for position in document[flag]}
        for flag in ("truncated", "timed_out", "skipped", "missing")
    }
    assert flagged == {
        "truncated": {"journal"},
        "timed_out": {"chronyc"},
        "skipped": {"curl"},
        "missing": {"ip-route"},
    }
    assert sum(document["size"]) == len(text)
    assert text == "".join(step.output for step in report.steps)


def test_outputs_split_back_by_characters_whatever_they_hold(store: Store) -> None:
    """Sizes count characters: multi-byte text, scrubbed NULs and lone surrogates, empty
    outputs and a missing step all come back in their places."""
    outputs = ["caf\u00e9 \U0001f600\n", "", "nul\x00byte", "lone \udc80 surrogate", "\u0444" * 5]
    steps = tuple(
        StepOutput(name=f"s{at}", output=text, exit_code=at, duration_s=0.5)
        for at, text in enumerate(outputs)
    ) + (StepOutput(name="gone", output="", missing=True),)
    report = DeviceReport(uuid="u-text", name="text", reachable=True, steps=steps)
    run_id = store.start_run(source="inventory", fleet=None, devices_total=1, options={})
    store.save_reports(run_id, [report])
    (loaded,) = store.load_reports(run_id)
    assert [step.output for step in loaded.steps] == [
        "caf\u00e9 \U0001f600\n",
        "",
        "nul\ufffdbyte",
        "lone \ufffd surrogate",
        "\u0444" * 5,
        "",
    ]
    assert [s.name for s in loaded.steps] == [s.name for s in steps]
    assert loaded.steps[-1].missing and not loaded.steps[0].missing
    assert [s.exit_code for s in loaded.steps] == [0, 1, 2, 3, 4, None]


def test_step_times_are_stored_as_floats(store: Store, db_url: str) -> None:
    """Durations and arrival times are stored as JSON floats: an integer one still comes back a
    float, and a missing one null."""
    steps = (
        StepOutput(name="whole", output="", exit_code=0, duration_s=2, received_at=1_700_000_000),
        StepOutput(name="part", output="", exit_code=0, duration_s=0.25, received_at=None),
    )
    report = DeviceReport(uuid="u-times", name="times", reachable=True, steps=steps)
    run_id = store.start_run(source="inventory", fleet=None, devices_total=1, options={})
    store.save_reports(run_id, [report])
    document, _text = _stored_steps(db_url)
    stored = list(
        zip(document["name"], document["duration_s"], document["received_at"], strict=True)
    )
    assert stored == [("whole", 2.0, 1_700_000_000.0), ("part", 0.25, None)]
    assert all(
        type(value) is float
        for _, duration, arrival in stored
        for value in (duration, arrival)
        if value is not None
    )
    (loaded,) = store.load_reports(run_id)
    assert [(s.duration_s, s.received_at) for s in loaded.steps] == [
        (2.0, 1_700_000_000.0),
        (0.25, None),
    ]


def test_report_summaries_are_the_reports_without_steps_and_observations(
    store: Store, make_report, make_unreachable
) -> None:
    reports = [make_report(), make_unreachable(), make_report("c0ffee", "demo-healthy")]
    run_id = store.start_run(source="inventory", fleet="DebugFleet", devices_total=4, options={})
    store.save_reports(run_id, reports)
    other_run = store.start_run(source="inventory", fleet=None, devices_total=1, options={})
    store.save_reports(other_run, [make_report("0ther", "other-run")])
    replaced = dataclasses.replace(reports[0], findings=reports[0].findings[1:], route="hostvia")
    store.save_reports(run_id, [replaced])
    store.set_network_causes(run_id, {"c0ffee": "network.site_vpn_blocked"})

    summaries = store.load_report_summaries(run_id)

    expected = [slim(report) for report in store.load_reports(run_id)]
    assert summaries == expected
    assert [s.uuid for s in summaries] == [reports[1].uuid, "c0ffee", replaced.uuid]
    assert summaries[2].findings == replaced.findings and summaries[2].steps == ()
    assert summaries[1].network_cause == "network.site_vpn_blocked"
    assert all(s.observations == () for s in summaries)
