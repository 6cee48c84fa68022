"""A sweep's writes use SQLAlchemy Core only: the ORM is never imported for them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from orchestrator.models import NetworkFinding
from orchestrator.store import Store
from tests.db.conftest import rich_report

REPO = Path(__file__).resolve().parents[2]

SWEEP = """
import json, sys
from orchestrator.models import NetworkFinding
from orchestrator.store import Store
from tests.db.conftest import rich_report

url = sys.argv[1]
with Store.open(url) as store:
    store.recover_orphans()
    run_id = store.start_run(source="inventory", fleet="lab", devices_total=1, options={})
    store.set_devices_total(run_id, 2)
    store.save_reports(run_id, [rich_report(), rich_report("f" * 32, "second")])
    store.set_network_causes(run_id, {"f" * 32: "network issue, not this device: gateway"})
    pattern = json.loads(sys.argv[2])
    pattern["devices"] = tuple(pattern["devices"])
    store.save_network_findings(run_id, [NetworkFinding(**pattern)])
    summary = store.finish_run(run_id, "completed")
print(json.dumps({
    "run": run_id,
    "summary": [summary.status, summary.devices_total, summary.devices_reached],
    "orm": sorted(m for m in sys.modules if m.startswith("sqlalchemy.orm")),
}))
"""

PATTERN = {
    "kind": "gateway",
    "value": "192.168.1.1",
    "category": "vpn",
    "code": "vpn.blocked",
    "devices": ["f" * 32],
    "affected": 1,
    "total": 2,
    "summary": "VPN blocked on one LAN",
    "remediation": "open TCP 443 to the VPN",
    "unreachable": False,
}


def test_a_sweep_writes_without_the_orm_and_reads_back_what_it_wrote(db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        with Store.open(db_url, require_head=False) as store:
            store.upgrade()
    done = subprocess.run(
        [sys.executable, "-c", SWEEP, db_url, json.dumps(PATTERN)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["orm"] == []
    assert result["summary"] == ["completed", 2, 2]
    with Store.open(db_url) as store:
        reports = {report.uuid: report for report in store.load_reports(result["run"])}
        assert reports[rich_report().uuid] == rich_report()
        second = reports["f" * 32]
        assert second.network_cause == "network issue, not this device: gateway"
        expected = NetworkFinding(**{**PATTERN, "devices": tuple(PATTERN["devices"])})
        assert store.load_network_findings(result["run"]) == [expected]
        assert store.get_run(result["run"]).devices_with_problems == 2
