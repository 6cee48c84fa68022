"""`orch history`, `patterns`, `diff`, `db prune`, and the `runs`/`show` filters through click on
SQLite, over runs stored with the real store API (and two real `orch diagnose --demo` runs)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from orchestrator.cli import main
from orchestrator.store import Store
from tests.db.test_history_support import (
    DEPOT,
    OFFICE,
    device,
    record_run,
    set_started,
    vpn_blocked_at_depot,
)

GATE = "4f1c2a9be0d84e1fa5b67c3d2e1f0a98"
DEPOT_UUIDS = [f"de9070{i:026d}" for i in range(3)]
CAUSE = "network issue, not this device: network 203.0.113.7 (site: depot-3) blocks TCP 443"


def orch(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def _night(gate_roots: list[str], *, depot_blocked: bool, gate_reachable: bool = True) -> list:
    depot = [
        device(
            uuid,
            f"depot-{i}",
            ["firewall.tcp_rejected"] if depot_blocked else [],
            network=DEPOT,
            network_cause=CAUSE if depot_blocked else None,
        )
        for i, uuid in enumerate(DEPOT_UUIDS)
    ]
    gate = device(GATE, "gate-01", gate_roots, reachable=gate_reachable, network=OFFICE)
    return [gate, *depot]


@pytest.fixture
def incident(tmp_path: Path) -> tuple[str, list[int]]:
    """Four nights: all fine; the depot's VPN gets blocked and the gate's clock stops; both
    persist; the depot is fixed and the gate goes dark. The first night is 40 days old."""
    url = f"sqlite:///{tmp_path / 'orch.sqlite3'}"
    blocked = [vpn_blocked_at_depot(DEPOT_UUIDS, 3)]
    with Store.open(url) as store:
        runs = [
            record_run(store, _night([], depot_blocked=False)),
            record_run(store, _night(["time.chronyd_stopped"], depot_blocked=True), blocked),
            record_run(store, _night(["time.chronyd_stopped"], depot_blocked=True), blocked),
            record_run(store, _night([], depot_blocked=False, gate_reachable=False)),
        ]
    now = datetime.now(timezone.utc)
    for age, run_id in zip((40, 3, 2, 1), runs, strict=True):
        set_started(url, run_id, now - timedelta(days=age))
    return url, runs


def test_history_table_marks_root_cause_changes(incident: tuple[str, list[int]]) -> None:
    url, runs = incident
    result = orch("history", "gate-01", "--db", url)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"device gate-01 ({GATE})"
    body = [line for line in lines[4:] if line.strip()]
    assert [int(line.split()[0]) for line in body] == runs[::-1]
    assert "* was time.chronyd_stopped" in body[0] and "access.timeout" in body[0]
    assert "* was" not in body[1]
    assert "* was healthy" in body[2] and "time.chronyd_stopped" in body[2]
    assert "*" not in body[3]


def test_history_json_csv_since_and_category(incident: tuple[str, list[int]]) -> None:
    url, runs = incident
    result = orch("history", GATE[:8], "--since", "7d", "--format", "json", "--db", url)

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["device"] == {"uuid": GATE, "name": "gate-01", "fleet": "depots"}
    entries = document["results"]
    assert [e["run_id"] for e in entries] == runs[:0:-1]
    assert [e["changed"] for e in entries] == [True, False, True]
    assert entries[-1]["previous_root_causes"] == []
    assert entries[0]["reachable"] is False and entries[0]["route"] == "proxy"

    timed = orch("history", "gate-01", "--category", "time", "--format", "csv", "--db", url)
    rows = list(csv.DictReader(io.StringIO(timed.output)))
    assert [int(r["run_id"]) for r in rows] == [runs[2], runs[1]]
    assert [r["changed"] for r in rows] == ["false", "true"]


def test_history_unknown_device_is_one_line_exit_2(incident: tuple[str, list[int]]) -> None:
    url, _ = incident
    result = orch("history", "no-such-device", "--db", url)

    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "no-such-device" in result.stderr


def test_patterns_json_documented_shape_and_status(incident: tuple[str, list[int]]) -> None:
    url, runs = incident
    ongoing = json.loads(orch("patterns", str(runs[2]), "--format", "json", "--db", url).output)
    resolved = json.loads(orch("patterns", "--format", "json", "--db", url).output)
    new = json.loads(orch("patterns", str(runs[1]), "--format", "json", "--db", url).output)

    assert [p["status"] for p in new] == ["new"]
    assert [p["status"] for p in ongoing] == ["ongoing"]
    assert [p["status"] for p in resolved] == ["resolved"]
    finding = ongoing[0]
    assert set(finding) >= {
        "network",
        "category",
        "code",
        "devices",
        "affected",
        "total",
        "status",
        "first_seen",
        "last_seen",
        "summary",
        "remediation",
    }
    assert finding["network"] == {"kind": "public_address", "value": "203.0.113.7"}
    assert (finding["code"], finding["category"]) == ("firewall.tcp_rejected", "vpn")
    assert finding["devices"] == DEPOT_UUIDS and (finding["affected"], finding["total"]) == (3, 3)
    first = datetime.fromisoformat(finding["first_seen"])
    last = datetime.fromisoformat(finding["last_seen"])
    assert (last - first).days == 1
    assert resolved[0]["last_seen"] == finding["last_seen"]

    table = orch("patterns", "--db", url)
    assert table.exit_code == 0
    assert "resolved" in table.output and "public_address 203.0.113.7" in table.output


def test_diff_shows_worse_and_better_devices_and_networks(
    incident: tuple[str, list[int]],
) -> None:
    url, runs = incident
    worse = json.loads(
        orch("diff", str(runs[0]), str(runs[1]), "--format", "json", "--db", url).output
    )
    better = orch("diff", str(runs[2]), str(runs[3]), "--db", url)

    directions = {d["name"]: d["direction"] for d in worse["devices"]}
    assert directions == {
        "gate-01": "worse",
        "depot-0": "worse",
        "depot-1": "worse",
        "depot-2": "worse",
    }
    assert [n["status"] for n in worse["networks"]] == ["new"]
    assert worse["unchanged"] == 0
    assert better.exit_code == 0
    lines = better.output.splitlines()
    assert lines[0] == f"run {runs[2]} -> run {runs[3]}: 4 devices changed, 0 unchanged"
    gate = next(line for line in lines if "gate-01" in line)
    assert gate.startswith("worse") and "became unreachable" in gate
    assert sum(line.startswith("better") for line in lines) == 3
    assert any(line.startswith("resolved") and "firewall.tcp_rejected" in line for line in lines)

    missing = orch("diff", str(runs[0]), "999", "--db", url)
    assert missing.exit_code == 2 and "no run 999" in missing.stderr


def test_show_filters_select_devices_and_keep_the_document_shape(
    incident: tuple[str, list[int]],
) -> None:
    url, runs = incident
    run = str(runs[1])

    def names(*filters: str) -> list[str]:
        result = orch("show", run, *filters, "--format", "json", "--db", url)
        assert result.exit_code == 0, result.output
        document = json.loads(result.output)
        assert set(document) == {"run", "devices", "network_findings"}
        assert len(document["network_findings"]) == 1
        return [d["name"] for d in document["devices"]]

    assert names() == ["depot-0", "depot-1", "depot-2", "gate-01"]
    assert names("--category", "time") == ["gate-01"]
    assert names("--code", "firewall.tcp_rejected") == ["depot-0", "depot-1", "depot-2"]
    assert names("--network", "site:depot-3") == ["depot-0", "depot-1", "depot-2"]
    assert names("--network", "public_address:198.51.100.20") == ["gate-01"]
    assert names("--network", "lan:192.168.50.1/00:1b:21:3a:50:01") == [
        "depot-0",
        "depot-1",
        "depot-2",
    ]
    assert names("--unreachable") == []
    assert names("--reachable", "--category", "dns") == []
    assert (
        orch("show", str(runs[3]), "--unreachable", "--format", "csv", "--db", url).output.count(
            "gate-01"
        )
        == 1
    )
    bad = orch("show", run, "--network", "depot-3", "--db", url)
    assert bad.exit_code == 2 and "KIND:VALUE" in bad.stderr


def test_runs_filters_by_fleet_status_and_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orch.sqlite3'}"
    with Store.open(url) as store:
        old = record_run(store, [device(GATE, "gate-01")])
        other = record_run(store, [device(GATE, "gate-01")], fleet="other", source="balena:other")
        failed = record_run(store, [device(GATE, "gate-01")], status="failed")
    set_started(url, old, datetime.now(timezone.utc) - timedelta(days=30))

    def ids(*filters: str) -> list[int]:
        result = orch("runs", *filters, "--format", "json", "--db", url)
        assert result.exit_code == 0, result.output
        return [r["id"] for r in json.loads(result.output)]

    assert ids() == [failed, other, old]
    assert ids("--fleet", "depots") == [failed, old]
    assert ids("--status", "failed") == [failed]
    assert ids("--since", "7d") == [failed, other]
    assert ids("--fleet", "depots", "--status", "completed", "--since", "60d") == [old]


def test_db_prune_removes_old_raw_output_then_whole_runs(
    incident: tuple[str, list[int]],
) -> None:
    url, runs = incident
    kept = orch("db", "prune", "--older-than", "30d", "--db", url)

    assert kept.exit_code == 0, kept.output
    assert "pruned 1 runs" in kept.output and "removed the step outputs of 4 devices" in kept.output
    with Store.open(url) as store:
        assert not any(r.steps for r in store.load_reports(runs[0]))
        assert all(r.steps for r in store.load_reports(runs[1]))

    removed = orch("db", "prune", "--older-than", "30d", "--all", "--db", url)

    assert removed.exit_code == 0 and "removed 1 runs" in removed.output
    assert "4 device results" in removed.output
    history = json.loads(orch("history", GATE, "--format", "json", "--db", url).output)
    assert [e["run_id"] for e in history["results"]] == runs[:0:-1]
    bad = orch("db", "prune", "--older-than", "soon", "--db", url)
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1


def test_two_demo_runs_give_history_patterns_and_an_empty_diff(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orch.sqlite3'}"
    for _ in range(2):
        result = orch("diagnose", "--demo", "--format", "json", "--db", url)
        assert result.exit_code == 1, result.output

    patterns = json.loads(orch("patterns", "--format", "json", "--db", url).output)
    flagged = [p for p in patterns if p["network"]["kind"] == "lan"]
    assert len(flagged) == 1 and flagged[0]["status"] == "ongoing"
    assert flagged[0]["affected"] == flagged[0]["total"] >= 3
    assert flagged[0]["first_seen"] < flagged[0]["last_seen"]

    diff = json.loads(orch("diff", "1", "2", "--format", "json", "--db", url).output)
    assert diff["devices"] == [] and diff["networks"] == [] and diff["unchanged"] == 13

    member = flagged[0]["devices"][0]
    history = json.loads(orch("history", member, "--format", "json", "--db", url).output)
    assert [e["run_id"] for e in history["results"]] == [2, 1]
    assert all(e["network_cause"] for e in history["results"])
    assert [e["changed"] for e in history["results"]] == [False, False]
    on_lan = orch(
        "show",
        "--network",
        f"lan:{flagged[0]['network']['value']}",
        "--format",
        "json",
        "--db",
        url,
    )
    shown = sorted(d["uuid"] for d in json.loads(on_lan.output)["devices"])
    assert shown == sorted(flagged[0]["devices"])


@pytest.mark.parametrize(
    "command",
    [
        ["runs"],
        ["show"],
        ["history", "gate-01"],
        ["patterns"],
        ["diff", "1", "2"],
        ["db", "current"],
        ["db", "prune", "--older-than", "90d"],
    ],
)
def test_reading_a_missing_sqlite_file_is_one_line_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    # a mistyped --db must not become a new empty database (and its directories)
    missing = tmp_path / "typo" / "orch.sqlite3"
    result = orch(*command, "--db", f"sqlite:///{missing}")
    assert result.exit_code == 3
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"orch: error: no database at {missing}")
    assert not missing.parent.exists()


def test_reading_an_existing_empty_database_still_works(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orch.sqlite3'}"
    Store.open(url).close()
    result = orch("runs", "--db", url)
    assert result.exit_code == 0
    assert result.output.strip() == "no runs stored yet"
