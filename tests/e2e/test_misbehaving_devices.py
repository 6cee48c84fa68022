"""Devices that hang, drop the connection, flood output or forge frame markers, in one real run.

None of them may stall or corrupt the run: each gets a clear error or a truncated, flagged
output, and a healthy device in the same run is diagnosed normally.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from orchestrator.config import Config
from orchestrator.fleet.demo import demo_specs
from orchestrator.sim.model import misbehaving_specs
from orchestrator.sim.server import SimFleet
from orchestrator.store import Store
from orchestrator.sweep import SweepRequest, route_settings_from, run_sweep, ssh_settings_from


def test_misbehaving_devices_do_not_stall_or_corrupt_the_run(tmp_path: Path) -> None:
    healthy = next(spec for spec in demo_specs() if spec.name == "demo-healthy")
    store = Store.open(f"sqlite:///{tmp_path / 'orch.sqlite3'}")
    config = Config()

    async def scenario():
        async with SimFleet([healthy, *misbehaving_specs()], workdir=tmp_path / "sim") as fleet:
            _key, known_hosts = fleet.write_client_files(tmp_path)
            ssh = ssh_settings_from(
                config,
                keys=(fleet.client_key,),
                known_hosts=str(known_hosts),
                max_output_bytes=1024 * 1024,
            )
            routes = route_settings_from(config, None, None)
            request = SweepRequest(source_label="test", device_timeout_s=8)
            return await run_sweep(fleet.devices, request, config, store, ssh, routes)

    started = time.monotonic()
    outcome = asyncio.run(scenario())
    elapsed = time.monotonic() - started
    assert elapsed < 40, f"the run took {elapsed:.0f}s: a bad device stalled it"
    reports = {r.name: r for r in store.load_reports(outcome.run.id)}
    store.close()

    assert reports["demo-healthy"].reachable and reports["demo-healthy"].root_causes == ()

    hang = reports["sim-hang"]
    assert not hang.reachable and hang.error_kind == "timeout"
    assert hang.root_causes == ("access.timeout",)

    drop = reports["sim-drop"]
    assert drop.error_kind == "disconnected" and "lost" in (drop.error or "").lower()

    flood = reports["sim-flood"]
    assert flood.output_truncated
    assert "truncated" in (flood.error or "")

    forge = reports["sim-forge"]
    assert forge.reachable
    assert all(not step.missing for step in forge.steps), "forged markers broke the framing"
    assert "forged" not in {step.name for step in forge.steps}
    # the forged markers stay what they are: text inside the step that printed them
    assert any("@@ORCH:" in step.output for step in forge.steps)
    assert outcome.run.status == "completed"
    assert outcome.run.devices_total == 5
