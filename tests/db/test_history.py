"""History queries on SQLite and PostgreSQL: a device over time, patterns across runs, diffs,
filtered reports and pruning."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from orchestrator.store import Store
from orchestrator.store.history import DeviceNotFoundError
from tests.db.test_history_support import (
    DEPOT,
    device,
    dns_broken_at_office,
    record_run,
    set_started,
    vpn_blocked_at_depot,
)

GATE = "4f1c2a9be0d84e1fa5b67c3d2e1f0a98"
PUMP = "9b2d7e41c6a04f3b8d15e2a7c9f06b34"
TWIN = "9b2d7e4ffff04f3b8d15e2a7c9f06b35"


def test_history_newest_first_with_root_cause_changes(store: Store) -> None:
    runs = [
        record_run(store, [device(GATE, "gate-01")]),
        record_run(store, [device(GATE, "gate-01", ["time.chronyd_stopped"])]),
        record_run(store, [device(GATE, "gate-01", ["time.chronyd_stopped"])]),
        record_run(store, [device(GATE, "gate-01", reachable=False)]),
        record_run(store, [device(GATE, "gate-01", reachable=False)]),
    ]

    found = store.device_history(GATE)

    assert found.device.uuid == GATE and found.device.name == "gate-01"
    assert [e.run_id for e in found.entries] == runs[::-1]
    assert [e.root_causes for e in found.entries] == [
        ("access.timeout",),
        ("access.timeout",),
        ("time.chronyd_stopped",),
        ("time.chronyd_stopped",),
        (),
    ]
    assert [e.changed for e in found.entries] == [False, True, False, True, False]
    assert found.entries[1].previous_root_causes == ("time.chronyd_stopped",)
    assert found.entries[-1].previous_root_causes is None
    assert [e.reachable for e in found.entries] == [False, False, True, True, True]
    assert found.entries[0].route_kind == "proxy" and found.entries[-1].route_kind == "direct"
    assert found.entries[0].error == "connect timed out after 10 s"


def test_history_finds_device_by_uuid_prefix_or_name(store: Store) -> None:
    record_run(store, [device(GATE, "gate-01"), device(PUMP, "pump-07"), device(TWIN, "pump-07")])

    assert store.device_history(GATE[:7]).device.uuid == GATE
    assert store.device_history("gate-01").device.uuid == GATE
    assert store.device_history(PUMP).device.uuid == PUMP
    with pytest.raises(DeviceNotFoundError, match="several devices") as ambiguous:
        store.device_history("pump-07")
    assert PUMP in str(ambiguous.value) and TWIN in str(ambiguous.value)
    with pytest.raises(DeviceNotFoundError, match="several devices"):
        store.device_history(PUMP[:7])
    with pytest.raises(DeviceNotFoundError, match="no stored device"):
        store.device_history(GATE[:6])
    with pytest.raises(DeviceNotFoundError, match="no stored device"):
        store.device_history("4f1c2a9%")


def test_history_since_category_and_limit_keep_changes_against_older_runs(
    store: Store, db_url: str
) -> None:
    now = datetime.now(timezone.utc)
    old = record_run(store, [device(GATE, "gate-01", ["dns.resolution_failed"])])
    set_started(db_url, old, now - timedelta(days=10))
    middle = record_run(store, [device(GATE, "gate-01", ["firewall.tcp_rejected"])])
    set_started(db_url, middle, now - timedelta(days=3))
    newest = record_run(store, [device(GATE, "gate-01", ["firewall.tcp_rejected"])])

    recent = store.device_history(GATE, since=now - timedelta(days=7))
    assert [e.run_id for e in recent.entries] == [newest, middle]
    assert recent.entries[1].changed and recent.entries[1].previous_root_causes == (
        "dns.resolution_failed",
    )

    dns = store.device_history(GATE, category="dns")
    assert [e.run_id for e in dns.entries] == [old]
    supervisor_symptom_only = store.device_history(GATE, category="supervisor")
    assert [e.run_id for e in supervisor_symptom_only.entries] == [newest, middle, old]
    assert store.device_history(GATE, category="time").entries == ()

    latest = store.device_history(GATE, limit=1)
    assert [e.run_id for e in latest.entries] == [newest]
    assert latest.entries[0].changed is False
    assert latest.entries[0].previous_root_causes == ("firewall.tcp_rejected",)


def _depot_run(store: Store, network: list, **kwargs) -> int:
    reports = [
        device(f"d{i:031d}", f"depot-{i}", ["firewall.tcp_rejected"], network=DEPOT)
        for i in range(3)
    ]
    return record_run(store, reports, network, **kwargs)


def test_patterns_new_ongoing_resolved_with_first_and_last_seen(store: Store, db_url: str) -> None:
    now = datetime.now(timezone.utc)
    depot_devices = [f"d{i:031d}" for i in range(3)]
    vpn = vpn_blocked_at_depot(depot_devices, 3)
    dns = dns_broken_at_office(["o1", "o2", "o3"], 4)
    first = _depot_run(store, [vpn])
    other_fleet = _depot_run(store, [vpn, dns], fleet="other", source="balena:other")
    failed = _depot_run(store, [], status="failed")
    second = _depot_run(store, [vpn, dns])
    running = _depot_run(store, [], status="running")
    third = _depot_run(store, [dns])
    for offset, run_id in enumerate([first, other_fleet, failed, second, running, third]):
        set_started(db_url, run_id, now - timedelta(days=6 - offset))

    at_second = store.network_patterns(second)
    assert at_second.previous is not None and at_second.previous.id == first
    by_code = {r.finding.code: r for r in at_second.records}
    assert by_code["firewall.tcp_rejected"].status == "ongoing"
    assert by_code["dns.resolution_failed"].status == "new"
    assert by_code["firewall.tcp_rejected"].first_seen == store.get_run(first).started_at
    assert by_code["firewall.tcp_rejected"].last_seen == store.get_run(second).started_at
    assert by_code["dns.resolution_failed"].first_seen == store.get_run(second).started_at

    latest = store.network_patterns()
    assert latest.run.id == third
    assert latest.previous is not None and latest.previous.id == second
    statuses = {(r.finding.code, r.status) for r in latest.records}
    assert statuses == {("dns.resolution_failed", "ongoing"), ("firewall.tcp_rejected", "resolved")}
    resolved = next(r for r in latest.records if r.status == "resolved")
    assert resolved.last_seen == store.get_run(second).started_at
    assert resolved.to_dict()["devices"] == depot_devices

    windowed = store.network_patterns(third, since=now - timedelta(days=4))
    first_seen = {r.finding.code: r.first_seen for r in windowed.records}
    assert first_seen["firewall.tcp_rejected"] == store.get_run(second).started_at

    assert store.network_patterns(fleet="other").run.id == other_fleet
    assert {r.status for r in store.network_patterns(other_fleet).records} == {"new"}


def test_diff_runs_reports_worse_better_added_removed_and_networks(store: Store) -> None:
    vpn_devices = [f"d{i:031d}" for i in range(3)]
    before = record_run(
        store,
        [
            device("healthy-then-sick", "gate-01"),
            device("sick-then-healthy", "gate-02", ["time.ntp_unreachable"]),
            device("cause-swap", "gate-03", ["dns.resolution_failed"]),
            device("goes-dark", "gate-04"),
            device("comes-back", "gate-05", reachable=False),
            device("steady", "gate-06", ["time.chronyd_stopped"]),
            device("retired", "gate-07"),
        ],
        [vpn_blocked_at_depot(vpn_devices[:2], 3), dns_broken_at_office(["x"] * 3, 4)],
    )
    after = record_run(
        store,
        [
            device("healthy-then-sick", "gate-01", ["dpi.tls_intercepted"]),
            device("sick-then-healthy", "gate-02"),
            device("cause-swap", "gate-03", ["firewall.tcp_rejected"]),
            device("goes-dark", "gate-04", reachable=False),
            device("comes-back", "gate-05"),
            device("steady", "gate-06", ["time.chronyd_stopped"]),
            device("brand-new", "gate-08"),
        ],
        [vpn_blocked_at_depot(vpn_devices, 3)],
    )

    diff = store.diff_runs(before, after)

    changes = {c.uuid: c for c in diff.devices}
    assert diff.unchanged == 1 and "steady" not in changes
    assert changes["healthy-then-sick"].direction == "worse"
    assert "new root cause dpi.tls_intercepted" in changes["healthy-then-sick"].reasons
    assert changes["sick-then-healthy"].direction == "better"
    assert changes["cause-swap"].direction == "worse"
    assert set(changes["cause-swap"].reasons) == {
        "new root cause firewall.tcp_rejected",
        "resolved dns.resolution_failed",
    }
    assert changes["goes-dark"].direction == "worse"
    assert "became unreachable" in changes["goes-dark"].reasons
    assert changes["comes-back"].direction == "better"
    assert changes["brand-new"].direction == "added" and changes["brand-new"].before is None
    assert changes["retired"].direction == "removed" and changes["retired"].after is None
    assert [c.direction for c in diff.devices] == sorted(
        (c.direction for c in diff.devices), key=["worse", "better", "added", "removed"].index
    )
    networks = {n.code: n for n in diff.networks}
    assert networks["firewall.tcp_rejected"].status == "worse"
    assert (
        networks["firewall.tcp_rejected"].affected_before,
        networks["firewall.tcp_rejected"].affected_after,
    ) == (2, 3)
    assert networks["dns.resolution_failed"].status == "resolved"


def test_load_reports_where_selects_by_category_code_and_reachability(store: Store) -> None:
    run_id = record_run(
        store,
        [
            device("a", "clock", ["time.chronyd_stopped"]),
            device("b", "ntp", ["time.ntp_unreachable"]),
            device("c", "dark", reachable=False),
            device("d", "fine"),
        ],
    )

    def names(**filters: object) -> list[str]:
        return [r.name for r in store.load_reports_where(run_id, **filters)]  # type: ignore[arg-type]

    assert names(category="time") == ["clock", "ntp"]
    assert names(code="time.ntp_unreachable") == ["ntp"]
    assert names(category="dns") == []
    assert names(reachable=False) == ["dark"]
    assert names(reachable=True, category="supervisor") == ["clock", "ntp"]
    full = store.load_reports_where(run_id, code="time.chronyd_stopped")[0]
    assert full == next(r for r in store.load_reports(run_id) if r.uuid == "a")


def test_prune_keeps_findings_by_default_and_removes_whole_runs_with_all(
    store: Store, db_url: str, make_report
) -> None:
    now = datetime.now(timezone.utc)
    old = record_run(store, [make_report(), device(GATE, "gate-01", ["dns.resolution_failed"])])
    set_started(db_url, old, now - timedelta(days=120))
    stuck = record_run(store, [device(PUMP, "pump-07")], status="running")
    set_started(db_url, stuck, now - timedelta(days=120))
    recent = record_run(store, [make_report(), device(GATE, "gate-01")])
    cutoff = now - timedelta(days=90)

    pruned = store.prune(cutoff)

    # the device results whose step outputs (both had steps) or observations (gate-01 had
    # none) went
    assert (pruned.runs, pruned.step_outputs, pruned.observations) == (1, 2, 1)
    kept = store.load_reports(old)
    assert [len(r.steps) + len(r.observations) for r in kept] == [0, 0]
    assert [r.root_causes for r in kept] == [
        ("time.chrony_stopped", "dns.ok"),
        ("dns.resolution_failed", "dns.ok"),
    ]
    assert all(r.steps for r in store.load_reports(recent))
    assert store.load_reports(recent)[0].observations == make_report().observations
    assert store.load_reports(stuck)[0].steps
    assert store.device_history(GATE).entries[-1].root_causes == ("dns.resolution_failed",)
    again = store.prune(cutoff)
    assert (again.step_outputs, again.observations) == (0, 0)

    removed = store.prune(cutoff, whole_runs=True)

    assert (removed.runs, removed.device_results, removed.findings) == (1, 2, 4 + 3)
    assert [r.id for r in store.list_runs()] == [recent, stuck]
    assert [e.run_id for e in store.device_history(GATE).entries] == [recent]
