"""Benchmark distributed sweeps: ``orch diagnose --workers`` on K ``orch worker`` processes.

    python tests/bench/workers_bench.py --sizes 1000,10000 --workers 2 [--pg-url URL]

For each size N it starts the same simulated fleet as run_bench.py (loopback ports 20000+i, in
this network namespace, because PostgreSQL must be reachable), makes a fresh PostgreSQL
database, and measures the same sweep twice:

1. ``orch diagnose`` in one process, storing in that database (the reference);
2. ``orch diagnose --workers``: the coordinator shards the sweep into procrastinate jobs and K
   ``orch worker`` processes, started beforehand, run them.

Reported: wall time (the coordinator's, until the run is complete), client CPU per device
(coordinator plus workers: ``/proc`` counters of the workers across the run), PostgreSQL's own
CPU per device (every ``postgres`` process, and the backends that ended), peak RSS (the largest
process), devices reachable in orch's JSON, and from the database the run's status, result rows
and distinct devices (a retried shard must not duplicate or lose a device). The fleet shares the
machine, so on a small machine this shows what distribution costs, not what it gains: workers pay
off when each runs on its own machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.bench.run_bench import (  # noqa: E402
    ORCH,
    Measured,
    PeakRss,
    SizeFiles,
    capture_scenarios,
    measure,
    orch_outcome,
    prepare_size,
    start_fleet,
    stop_fleet,
    work_directory,
    write_keys,
)

PROXY_PORT = 19999
"""The proxy stand-in's port: this bench stays in the host namespace, where 22 is taken."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000", help="comma list of fleet sizes")
    parser.add_argument("--workers", type=int, default=2, help="orch worker processes")
    parser.add_argument(
        "--worker-concurrency", type=int, default=2, help="shards one worker runs at once"
    )
    parser.add_argument("--shard-size", type=int, default=250)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=50,
        help="devices in flight per shard; the one-process reference gets "
        "workers x worker-concurrency x this, the same total",
    )
    parser.add_argument("--route", choices=("direct", "jump", "proxy"), default="direct")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay (sleeps)")
    parser.add_argument("--fleet-procs", type=int, default=2)
    parser.add_argument(
        "--refused",
        action="store_true",
        help="no fleet: every device's address is a closed loopback port, so each is an "
        "unreachable report at once (sharding, job queue, storage and the coordinator alone, "
        "at sizes a fleet on one machine cannot reach)",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("ORCH_BENCH_PG_URL") or os.environ.get("ORCH_TEST_PG_URL"),
        help="a PostgreSQL URL whose role may create databases "
        "(default: ORCH_BENCH_PG_URL, then ORCH_TEST_PG_URL; .ci/postgres.sh prints one)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="run the coordinator under py-spy into DIR (its CPU figures then include py-spy's)",
    )
    parser.add_argument("--json-out", help="write all measurements here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if not args.pg_url:
        parser.error("needs PostgreSQL: --pg-url URL (start one with: bash .ci/postgres.sh)")
    return args


def proc_cpu_s(pid: int) -> float:
    """User+system CPU seconds of ``pid`` and of its children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def postgres_cpu_s() -> float:
    """CPU seconds of every running ``postgres`` process, ended backends included (they are
    counted in the postmaster's children time)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "postgres":
                total += proc_cpu_s(int(entry.name))
        except (OSError, ValueError):
            continue
    return total


class Database:
    """A fresh database on the server of ``admin_url``, migrated to orch's newest schema."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.name = f"orch_bench_{uuid.uuid4().hex[:12]}"
        self._admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.url = make_url(admin_url).set(database=self.name).render_as_string(hide_password=False)

    def __enter__(self) -> Database:
        from sqlalchemy import text

        from orchestrator.store import Store

        with self._admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.name}"'))
        with Store.open(self.url, require_head=False) as store:
            store.upgrade()
        return self

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import text
        from sqlalchemy.exc import OperationalError

        for _attempt in range(20):  # stopped workers' sessions may take a moment to go
            try:
                with self._admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{self.name}"'))
                break
            except OperationalError:
                time.sleep(0.5)
        else:
            print(f"could not drop database {self.name}: drop it by hand", file=sys.stderr)
        self._admin.dispose()

    def run_summary(self) -> dict:
        """The newest run's status, result rows and distinct devices."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                run_id, status = connection.execute(
                    text("SELECT id, status FROM runs ORDER BY id DESC LIMIT 1")
                ).one()
                rows, distinct = connection.execute(
                    text(
                        "SELECT count(*), count(DISTINCT device_uuid) FROM device_results "
                        "WHERE run_id = :run"
                    ),
                    {"run": run_id},
                ).one()
        finally:
            engine.dispose()
        return {"run_id": run_id, "status": status, "result_rows": rows, "devices": distinct}


def point_at_closed_port(files: SizeFiles) -> None:
    """Rewrite the inventory so every device is at a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        inventory = Path(files.fleet_args[files.fleet_args.index("--inventory") + 1])
        devices = json.loads(inventory.read_text())
        for device in devices:
            device["port"] = port
            device.pop("gateway", None)
        inventory.write_text(json.dumps(devices))


def worker_config(files: SizeFiles, key: Path) -> Path:
    """The bench's orch config plus the SSH section a worker reads its key and hosts from."""
    path = files.size_dir / "worker.toml"
    known_hosts = files.size_dir / "known_hosts"
    path.write_text(
        files.config.read_text() + f'[ssh]\nkeys = ["{key}"]\nknown_hosts = "{known_hosts}"\n'
    )
    return path


def start_workers(count: int, config: Path, files: SizeFiles, concurrency: int, url: str):
    """``orch worker`` processes, returned once each has said it is up."""
    workers = []
    for index in range(count):
        log = files.size_dir / f"worker-{index}.log"
        argv = [sys.executable, "-c", ORCH, "--config", str(config), "worker", "--db", url]
        argv += ["--concurrency", str(concurrency), "--heartbeat", "2", "--shutdown-timeout", "5"]
        with log.open("wb") as out:
            workers.append(
                (
                    subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=files.env),
                    log,
                )
            )
    deadline = time.monotonic() + 180
    for proc, log in workers:
        while "orch: worker " not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_workers(workers)
                raise SystemExit(f"orch worker did not start: {log.read_text(errors='replace')}")
            time.sleep(0.1)
    return workers


def stop_workers(workers: list) -> None:
    for proc, _log in workers:
        if proc.poll() is None:
            proc.terminate()
    for proc, _log in workers:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def profiled(argv: list[str], raw: Path) -> list[str]:
    """``argv`` under py-spy, writing raw collapsed stacks to ``raw``."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    raw.parent.mkdir(parents=True, exist_ok=True)
    return [spy, "record", "--gil", "--format", "raw", "--rate", "200", "-o", str(raw), "--", *argv]


def per_device(measured: dict, n: int) -> dict:
    return dict(
        measured,
        cpu_ms_per_device=round(measured["cpu_s"] * 1000 / n, 2),
        postgres_cpu_ms_per_device=round(measured["postgres_cpu_s"] * 1000 / n, 2),
    )


def run_one_process(files: SizeFiles, url: str, n: int, in_flight: int) -> dict:
    argv = [sys.executable, "-c", ORCH, "--config", str(files.config), "diagnose"]
    argv += [*files.fleet_args, "--db", url, "--format", "json", "--concurrency", str(in_flight)]
    pg_before = postgres_cpu_s()
    measured: Measured = measure(argv, files.size_dir / "one-process.out", files.env)
    measured["postgres_cpu_s"] = round(postgres_cpu_s() - pg_before, 3)
    measured.update(orch_outcome(files.size_dir / "one-process.out"))
    return per_device(measured, n)


def run_distributed(
    files: SizeFiles, url: str, n: int, args: argparse.Namespace, key: Path
) -> dict:
    config = worker_config(files, key)
    workers = start_workers(args.workers, config, files, args.worker_concurrency, url)
    try:
        pids = [proc.pid for proc, _log in workers]
        argv = [sys.executable, "-c", ORCH, "--config", str(files.config), "diagnose"]
        argv += [*files.fleet_args, "--db", url, "--format", "json"]
        argv += ["--concurrency", str(args.concurrency)]
        argv += ["--workers", "--shard-size", str(args.shard_size)]
        if args.profile:
            argv = profiled(argv, Path(args.profile) / f"coordinator-n{n}.txt")
        before = [proc_cpu_s(pid) for pid in pids]
        pg_before = postgres_cpu_s()
        with PeakRss(pids) as workers_rss:
            coordinator = measure(argv, files.size_dir / "distributed.out", files.env)
        workers_cpu = sum(proc_cpu_s(pid) for pid in pids) - sum(before)
        pg_cpu = postgres_cpu_s() - pg_before
    finally:
        stop_workers(workers)
    measured = dict(
        coordinator,
        coordinator_cpu_s=coordinator["cpu_s"],
        workers_cpu_s=round(workers_cpu, 3),
        cpu_s=round(coordinator["cpu_s"] + workers_cpu, 3),
        worker_peak_rss_mb=round(workers_rss.peak_kb / 1024, 1),
        postgres_cpu_s=round(pg_cpu, 3),
    )
    measured.update(orch_outcome(files.size_dir / "distributed.out"))
    return per_device(measured, n)


def print_row(n: int, label: str, m: dict, summary: dict) -> None:
    rss = m.get("worker_peak_rss_mb")
    rss_text = f"{m['peak_rss_mb']:.0f} MB" + (f", worker {rss:.0f} MB" if rss else "")
    split = (
        f" (coordinator {m['coordinator_cpu_s']:.1f}s, workers {m['workers_cpu_s']:.1f}s)"
        if "workers_cpu_s" in m
        else ""
    )
    print(
        f"N={n:>6} {label:<22} {m['wall_s']:7.2f}s {m['cpu_ms_per_device']:6.2f} ms/dev{split} "
        f"postgres {m['postgres_cpu_ms_per_device']:.2f} ms/dev | peak {rss_text} | "
        f"ok={m['completed']} rc={m['rc']} | run {summary['status']}, "
        f"{summary['result_rows']} rows, {summary['devices']} devices",
        flush=True,
    )


def run_size(n: int, args: argparse.Namespace, work: Path, keys: tuple, captures: dict) -> dict:
    files = prepare_size(n, args, work, keys, captures, proxy_port=PROXY_PORT)
    in_flight = args.workers * args.worker_concurrency * args.concurrency
    if args.refused:
        point_at_closed_port(files)
        fleet = []
    else:
        fleet = start_fleet(files.spec, args.fleet_procs, files.size_dir)
    result: dict = {"n": n, "route": args.route, "in_flight": in_flight}
    try:
        with Database(args.pg_url) as db:
            result["one_process"] = run_one_process(files, db.url, n, in_flight)
            result["one_process"]["run"] = db.run_summary()
            print_row(n, "one process", result["one_process"], result["one_process"]["run"])
        with Database(args.pg_url) as db:
            label = f"{args.workers} workers x {args.worker_concurrency}"
            result["distributed"] = run_distributed(files, db.url, n, args, keys[0])
            result["distributed"]["run"] = db.run_summary()
            print_row(n, label, result["distributed"], result["distributed"]["run"])
    finally:
        result["fleet_cpu_s"] = round(stop_fleet(fleet), 2)
    one, spread = result["one_process"], result["distributed"]
    print(
        f"  distributed / one process: wall x{spread['wall_s'] / one['wall_s']:.2f}, "
        f"client CPU x{spread['cpu_s'] / max(one['cpu_s'], 1e-9):.2f}; "
        f"fleet CPU {result['fleet_cpu_s']:.1f}s",
        file=sys.stderr,
    )
    return result


def main() -> None:
    args = parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    with work_directory("orch-workers-bench-", args.keep) as work:
        keys = write_keys(work)
        captures = {} if args.refused else capture_scenarios(max(sizes))
        results = [run_size(n, args, work, keys, captures) for n in sizes]
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
