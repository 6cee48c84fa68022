"""`orch` end to end through click's CliRunner against the demo fleet (real SSH on loopback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import main
from orchestrator.fleet.demo import demo_specs
from orchestrator.sim.render import config_secrets

EXPECTED_ROOT_CAUSES = {
    "demo-healthy": [],
    "demo-gateway": [],
    "demo-gateway-only": [],
    "demo-clock-skewed": ["time.chronyd_stopped"],
    "demo-ntp-blocked": ["time.ntp_unreachable"],
    "demo-dns-broken": ["dns.resolver_file_missing", "dns.upstream_dead"],
    "demo-vpn-blocked": ["firewall.tcp_dropped"],
    "demo-tls-intercepted": ["dpi.tls_intercepted"],
    "demo-supervisor-unhealthy": ["supervisor.unhealthy"],
    "demo-depot3-1": ["firewall.tcp_dropped"],
    "demo-depot3-2": ["firewall.tcp_dropped"],
    "demo-depot3-3": ["firewall.tcp_dropped"],
    "demo-depot3-4": ["firewall.tcp_dropped"],
}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object, dict]:
    db_url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'orch.sqlite3'}"
    result = CliRunner().invoke(main, ["diagnose", "--demo", "--db", db_url, "--format", "json"])
    assert result.exit_code == 1, result.output
    return db_url, result, json.loads(result.stdout)


def test_demo_reaches_every_device_and_exits_1(demo_run) -> None:
    _db, _result, document = demo_run
    run = document["run"]
    assert run["status"] == "completed"
    assert run["devices_total"] == run["devices_reached"] == len(demo_specs())
    assert all(device["reachable"] for device in document["devices"])


def test_each_demo_device_gets_exactly_its_intended_root_cause(demo_run) -> None:
    _db, _result, document = demo_run
    got = {d["name"]: sorted(d["root_causes"]) for d in document["devices"]}
    assert got == {name: sorted(codes) for name, codes in EXPECTED_ROOT_CAUSES.items()}


def test_consequences_name_their_cause(demo_run) -> None:
    _db, _result, document = demo_run
    skewed = next(d for d in document["devices"] if d["name"] == "demo-clock-skewed")
    explained = {f["code"]: f["caused_by"] for f in skewed["findings"] if f["caused_by"]}
    assert explained, "a stopped chronyd must explain the skewed clock and what it breaks"
    assert explained.get("time.clock_skewed") == "time.chronyd_stopped"
    for finding in skewed["findings"]:
        assert set(finding) == {
            "code",
            "category",
            "severity",
            "summary",
            "evidence",
            "remediation",
            "caused_by",
        }


def test_demo_site_is_one_network_finding(demo_run) -> None:
    _db, _result, document = demo_run
    network = document["network_findings"]
    assert len(network) == 1
    (finding,) = network
    depot = sorted(d["uuid"] for d in document["devices"] if d["name"].startswith("demo-depot3"))
    assert sorted(finding["devices"]) == depot
    assert (finding["affected"], finding["total"]) == (4, 4)
    assert "depot-3" in finding["summary"]
    for device in document["devices"]:
        assert bool(device["network_cause"]) == device["name"].startswith("demo-depot3")


def test_show_reads_the_run_back_identically(demo_run) -> None:
    db_url, result, document = demo_run
    shown = CliRunner().invoke(
        main, ["show", str(document["run"]["id"]), "--db", db_url, "--format", "json"]
    )
    assert shown.exit_code == 0, shown.output
    assert shown.stdout == result.stdout


def test_runs_lists_the_run(demo_run) -> None:
    db_url, _result, document = demo_run
    listed = CliRunner().invoke(main, ["runs", "--db", db_url, "--format", "json"])
    assert listed.exit_code == 0, listed.output
    runs = json.loads(listed.stdout)
    assert [r["id"] for r in runs] == [document["run"]["id"]]
    assert runs[0]["status"] == "completed" and runs[0]["source"] == "demo"
    table = CliRunner().invoke(main, ["runs", "--db", db_url])
    assert "completed" in table.stdout and "13/13" in table.stdout


def test_device_secrets_never_reach_output_or_database(demo_run) -> None:
    db_url, result, _document = demo_run
    stored = Path(db_url.removeprefix("sqlite:///")).read_bytes()
    for spec in demo_specs():
        for secret in config_secrets(spec):
            assert secret not in result.output
            assert secret.encode() not in stored


def test_table_output_groups_the_network_issue(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'orch.sqlite3'}"
    result = CliRunner().invoke(
        main,
        [
            "diagnose",
            "--demo",
            "--device",
            "demo-depot3-1",
            "--device",
            "demo-healthy",
            "--db",
            db_url,
        ],
    )
    assert result.exit_code == 1
    assert "demo-healthy" in result.stdout and "healthy" in result.stdout
    assert "firewall.tcp_dropped" in result.stdout


def test_healthy_only_run_exits_0(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'orch.sqlite3'}"
    result = CliRunner().invoke(
        main,
        [
            "diagnose",
            "--demo",
            "--device",
            "demo-healthy",
            "--device",
            "demo-gateway-only",
            "--db",
            db_url,
            "--format",
            "csv",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("run_id,uuid,name,reachable,route")
    assert {line.split(",")[2] for line in lines[1:]} == {"demo-healthy", "demo-gateway-only"}
    assert "jump " in result.stdout  # the gateway-only device was reached through its gateway
