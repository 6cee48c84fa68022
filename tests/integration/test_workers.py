"""Distributed sweeps on a real PostgreSQL with real ``orch worker`` processes.

The fleet is simulated (asyncssh servers on 127.0.0.1 running the real probe script); the
workers are separate Python processes that read their SSH key and known_hosts from an orch
config file, exactly as a worker on another machine would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import asyncssh
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from orchestrator.config import load_config
from orchestrator.distributed.coordinator import (
    DistributedOptions,
    plan_devices,
    run_distributed,
    shard_settings,
)
from orchestrator.distributed.known_hosts import KnownHostsReader
from orchestrator.distributed.shard import (
    PlannedDevice,
    ShardJob,
    shard_from_json,
    shard_to_json,
    split,
    unpack,
)
from orchestrator.distributed.tasks import WorkerResources, run_shard, worker_ssh_settings
from orchestrator.fleet.demo import demo_specs
from orchestrator.models import Device, Route
from orchestrator.sim.model import make_fleet
from orchestrator.sim.server import SimFleet
from orchestrator.store import Store
from orchestrator.sweep import SweepRequest, route_settings_from, ssh_settings_from
from orchestrator.transport.routes import RouteSettings
from orchestrator.transport.ssh import SSHSettings

PG_ENV = "ORCH_TEST_PG_URL"
REPO = Path(__file__).resolve().parents[2]
SHARD_SIZE = 10


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test, migrated to head, dropped afterwards."""
    admin_url = os.environ.get(PG_ENV)
    if not admin_url:
        pytest.skip(f"distributed sweeps need PostgreSQL: set {PG_ENV} (see .ci/postgres.sh)")
    name = f"orch_w_{uuid.uuid4().hex[:16]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        with Store.open(url, require_head=False) as store:
            store.upgrade()
        yield url
    finally:
        with admin.connect() as connection:
            try:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            except OperationalError:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Workers:
    """``orch worker`` subprocesses; every one is killed at the end of the test."""

    def __init__(self, config: Path, url: str, logs: Path) -> None:
        self.config, self.url, self.logs = config, url, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 1) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        command = [sys.executable, "-c", "from orchestrator.cli import main; main()"]
        command += ["--config", str(self.config), "worker", "--db", self.url]
        command += [
            "--concurrency",
            str(concurrency),
            "--heartbeat",
            "0.5",
            "--shutdown-timeout",
            "1",
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("ORCH_DB_URL", None)
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        log.close()
        self.procs.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)

    def log_text(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.logs.glob("worker-*.log")))


def _write_config(directory: Path, fleet: SimFleet, concurrency: int) -> Path:
    key, known_hosts = fleet.write_client_files(directory / "client")
    config = directory / "orch.toml"
    config.write_text(
        f'[ssh]\nkeys = ["{key}"]\nknown_hosts = "{known_hosts}"\n'
        f"device_timeout = 30\n\n[run]\nconcurrency = {concurrency}\n"
    )
    return config


def _fleet_specs(size: int) -> list:
    """The demo fleet (with its depot-3 pattern) topped up with generated devices."""
    specs = demo_specs()
    return specs + make_fleet(size - len(specs), seed=7)


def _spread(devices: list[Device], marker: str, every: int) -> list[Device]:
    """Reorder so devices whose name contains ``marker`` land in different shards."""
    marked = [d for d in devices if marker in d.name]
    rest = [d for d in devices if marker not in d.name]
    for position, device in enumerate(marked):
        rest.insert(position * every, device)
    return rest


def _rows_per_device(url: str, run_id: int) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT device_uuid, count(*) FROM device_results WHERE run_id = :run "
                    "GROUP BY device_uuid"
                ),
                {"run": run_id},
            )
            return {uuid_: count for uuid_, count in rows}
    finally:
        engine.dispose()


def _query(url: str, sql: str, **params: object) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def _sweep(config_path: Path, url: str, devices: list[Device], store: Store, **options: float):
    config = load_config(config_path, env={})
    # two probes keep the simulated fleet's CPU low and still show the depot-3 VPN pattern
    request = SweepRequest(source_label="inventory:sim", fleet="sim", probes=["vpn", "network"])
    return run_distributed(
        devices,
        request,
        config,
        store,
        url,
        ssh_settings_from(config),
        route_settings_from(config, None, None),
        options=DistributedOptions(shard_size=SHARD_SIZE, poll_s=0.2, timeout_s=60, **options),
        fleet=devices,
    )


def test_shard_job_survives_json_with_planned_jump_routes():
    device = Device(
        uuid="a" * 32,
        name="scanner",
        address="10.0.0.9",
        gateway="gw",
        labels=("site:depot-3", "eth"),
        local_ips=("10.0.0.9",),
    )
    via = Route("direct", "10.0.0.1", 22222, "root")
    settings = shard_settings(
        SweepRequest(source_label="t", probes=["vpn"], concurrency=7),
        load_config(env={}),
        SSHSettings(),
        RouteSettings(),
    )
    job = ShardJob(
        run_id=3,
        index=1,
        devices=(
            PlannedDevice(device, (Route("jump", "10.0.0.9", 22222, "root", via=via),)),
            PlannedDevice(replace(device, uuid="b" * 32), (), "no route to scanner: offline"),
        ),
        settings=settings,
    )
    packed = json.loads(json.dumps(shard_to_json(job)))
    assert shard_from_json(packed) == job
    assert '"' not in packed["devices_packed"] and packed["device_count"] == 2
    older = dict(packed)  # as an older coordinator enqueued it
    older["devices"] = unpack(older.pop("devices_packed"))
    assert shard_from_json(older) == job
    with pytest.raises(ValueError, match="malformed shard job"):
        shard_from_json({"run_id": 3})
    with pytest.raises(ValueError, match="malformed shard job"):
        shard_from_json({**packed, "devices_packed": "not base64 at all!"})


@pytest.mark.postgres
@pytest.mark.timeout(90)
def test_two_workers_store_every_device_once_and_patterns_once(pg_url: str, tmp_path: Path):
    async def scenario() -> None:
        async with SimFleet(_fleet_specs(60)) as fleet:
            config = _write_config(tmp_path, fleet, concurrency=SHARD_SIZE)
            devices = _spread(list(fleet.devices), "depot3", every=SHARD_SIZE + 3)
            workers = Workers(config, pg_url, tmp_path)
            try:
                workers.start(), workers.start()
                await _wait_for_workers(pg_url, 2)
                with Store.open(pg_url) as store:
                    outcome = await _sweep(config, pg_url, devices, store)
                    stored_findings = store.load_network_findings(outcome.run.id)
                    stored = store.load_reports(outcome.run.id)
                job_args = _query(pg_url, "SELECT args::text FROM procrastinate_jobs")
                run_workers = _query(
                    pg_url,
                    "SELECT count(DISTINCT worker_id) FROM procrastinate_jobs "
                    "WHERE status = 'succeeded'",
                )[0][0]
            finally:
                workers.kill_all()
        run_id = outcome.run.id
        assert outcome.run.status == "completed", workers.log_text()
        rows = _rows_per_device(pg_url, run_id)
        assert rows == {device.uuid: 1 for device in devices}
        assert run_workers == 2, "both worker processes ran shards"
        assert len(job_args) == 6
        secrets = ("PRIVATE KEY", str(tmp_path / "client"), make_url(pg_url).password)
        readable = [
            args + json.dumps(unpack(json.loads(args)["devices_packed"])) for (args,) in job_args
        ]
        assert not [s for s in secrets for text in readable if s in text]
        assert all(device.uuid in "".join(readable) for device in devices)
        assert outcome.run.devices_reached >= 55

        # patterns: computed by the coordinator over the whole run, not per shard
        depot_uuids = {d.uuid for d in devices if "depot3" in d.name}
        depot = next(f for f in outcome.network_findings if depot_uuids <= set(f.devices))
        shard_of = {device.uuid: index // SHARD_SIZE for index, device in enumerate(devices)}
        assert len({shard_of[u] for u in depot.devices}) >= 3, "the group spans shards"
        assert stored_findings == outcome.network_findings
        caused = {r.uuid for r in stored if r.network_cause}
        assert set(depot.devices) <= caused

    asyncio.run(scenario())


@pytest.mark.postgres
@pytest.mark.timeout(60)
def test_a_worker_parses_known_hosts_again_only_when_the_file_changes(pg_url: str, tmp_path: Path):
    """Shards share the keys parsed at start; a changed file is read before the next shard; a
    file that disappears leaves the last keys in use, not a shard of configuration errors."""

    async def scenario() -> tuple[bool, list[list]]:
        async with SimFleet(_fleet_specs(14)) as fleet:
            config_path = _write_config(tmp_path, fleet, concurrency=4)
            config = load_config(config_path, env={})
            ssh = worker_ssh_settings(config)
            known_hosts = KnownHostsReader(ssh)
            unchanged = known_hosts.current() is known_hosts.current()
            path = tmp_path / "client" / "known_hosts"
            good = path.read_text()
            stranger = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
            wrong = "".join(f"{line.split()[0]} {stranger}" for line in good.splitlines())
            files = [None, wrong, good, "deleted"]  # what the file holds before each shard
            routes = route_settings_from(config, None, None)
            request = SweepRequest(source_label="t", probes=["network"], concurrency=4)
            settings = shard_settings(request, config, ssh, routes)
            planned = plan_devices(list(fleet.devices), list(fleet.devices), routes)
            outcomes = []
            with Store.open(pg_url) as store:
                run_id = store.start_run(source="t", fleet=None, devices_total=14, options={})
                resources = WorkerResources(store=store, ssh=ssh, known_hosts=known_hosts)
                for index, (chunk, content) in enumerate(
                    zip(split(planned, 4), files, strict=True)
                ):
                    if content == "deleted":
                        path.unlink()
                    elif content is not None:
                        staged = path.with_suffix(".new")
                        staged.write_text(content)
                        staged.replace(path)  # as editors and ssh-keyscan scripts do
                    await run_shard(ShardJob(run_id, index, tuple(chunk), settings), resources)
                    uuids = {item.device.uuid for item in chunk}
                    reports = [r for r in store.load_reports(run_id) if r.uuid in uuids]
                    outcomes.append([r.error_kind if r.error_kind else "ok" for r in reports])
            return unchanged, outcomes

    unchanged, outcomes = asyncio.run(scenario())
    assert unchanged, "an unchanged file is not parsed again"
    assert outcomes == [["ok"] * 4, ["hostkey"] * 4, ["ok"] * 4, ["ok"] * 2]


@pytest.mark.postgres
@pytest.mark.timeout(90)
def test_killed_worker_shard_is_retried_by_the_other(pg_url: str, tmp_path: Path):
    async def scenario() -> None:
        async with SimFleet(_fleet_specs(20)) as fleet:
            # one device at a time: a shard takes seconds, long enough to kill it mid-way
            config = _write_config(tmp_path, fleet, concurrency=1)
            devices = list(fleet.devices)
            workers = Workers(config, pg_url, tmp_path)
            sweep: asyncio.Future | None = None
            try:
                victim = workers.start()
                with Store.open(pg_url) as store:
                    sweep = asyncio.ensure_future(
                        _sweep(config, pg_url, devices, store, stalled_after_s=2.0)
                    )
                    job_id, victim_worker, before = await _wait_mid_shard(pg_url, sweep)
                    workers.start(concurrency=2)
                    victim.send_signal(signal.SIGKILL)
                    victim.wait(timeout=10)
                    outcome = await sweep
                job = _query(
                    pg_url,
                    "SELECT status::text, attempts, worker_id FROM procrastinate_jobs "
                    "WHERE id = :id",
                    id=job_id,
                )[0]
                after = dict(
                    _query(
                        pg_url,
                        "SELECT device_uuid, finished_at FROM device_results WHERE run_id = :r",
                        r=outcome.run.id,
                    )
                )
            finally:
                workers.kill_all()
                if sweep is not None and not sweep.done():
                    sweep.cancel()
                    with contextlib.suppress(BaseException):
                        await sweep
        assert outcome.run.status == "completed", workers.log_text()
        status, attempts, worker_id = job
        assert status == "succeeded"
        assert attempts >= 1, "the killed worker's shard was put back in the queue"
        assert worker_id is not None and worker_id != victim_worker
        assert _rows_per_device(pg_url, outcome.run.id) == {d.uuid: 1 for d in devices}
        # devices the killed worker had stored were diagnosed again and replaced, not duplicated
        assert before and all(after[u] != finished for u, finished in before.items())

    asyncio.run(scenario())


async def _wait_for_workers(url: str, count: int) -> None:
    """Wait until ``count`` workers have registered with the job queue."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(ProgrammingError):  # the job tables do not exist yet
            query = "SELECT count(*) FROM procrastinate_workers"
            if (await asyncio.to_thread(_query, url, query))[0][0] >= count:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} workers did not start")


async def _wait_mid_shard(url: str, sweep: asyncio.Future) -> tuple[int, int, dict]:
    """Wait until the only worker has stored part (not all) of a shard; return what it did."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert not sweep.done(), "the sweep ended before the worker could be killed"
        try:
            doing = await asyncio.to_thread(
                _query,
                url,
                "SELECT id, worker_id, args FROM procrastinate_jobs WHERE status = 'doing'",
            )
        except ProgrammingError:  # the job tables do not exist yet
            doing = []
        if doing:
            job_id, worker_id, args = doing[0]
            uuids = [item["device"]["uuid"] for item in unpack(args["devices_packed"])]
            rows = await asyncio.to_thread(
                _query,
                url,
                "SELECT device_uuid, finished_at FROM device_results "
                "WHERE device_uuid = ANY(:uuids)",
                uuids=uuids,
            )
            if 0 < len(rows) <= len(uuids) - 3:
                return job_id, worker_id, dict(rows)
        await asyncio.sleep(0.05)
    raise AssertionError("no shard was seen half done")
