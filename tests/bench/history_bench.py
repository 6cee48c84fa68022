"""Benchmark: `orch history DEVICE` on 365 nightly runs of a 2,000-device fleet (PostgreSQL).

Creates a fresh database next to the one in the URL (default $ORCH_TEST_PG_URL), migrates it,
bulk-loads the runs with COPY, runs ANALYZE, then times `Store.device_history` (by uuid, uuid
prefix and name, cold and warm) and the whole `orch history` command through click, plus
`orch patterns` and `orch diff` for scale. The database is dropped afterwards unless --keep.

    PYTHONPATH=. python tests/bench/history_bench.py [--url URL] [--runs 365] [--devices 2000]

Not collected by pytest. The fleet mix (deterministic, seeded): most devices healthy, a chronic
NTP-blocked group, a depot site whose VPN is blocked from night 200 on, flapping DNS devices,
devices that go dark for a stretch, and an intercepting proxy on one site for a month.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from orchestrator.cli import main
from orchestrator.store import Store

T0 = datetime(2025, 11, 1, 2, 0, tzinfo=timezone.utc)
ROOTS = {
    "time": ("time.ntp_unreachable", "no NTP source answers (Reach 0): UDP 123 is likely blocked"),
    "vpn": ("firewall.tcp_rejected", "TCP 443 to cloudlink.balena-cloud.com is refused"),
    "dns": ("dns.resolution_failed", "api.balena-cloud.com does not resolve"),
    "dpi": ("dpi.tls_intercepted", "TLS to api.balena-cloud.com is intercepted"),
}
SYMPTOMS = (
    ("supervisor.api_unreachable", "supervisor", "the supervisor cannot reach the API"),
    ("os_config.fetch_failed", "os_config", "os-config cannot fetch the device configuration"),
)


@contextmanager
def fresh_database(admin_url: str, keep: bool) -> Iterator[str]:
    """A new, empty database on the server of `admin_url`; dropped on exit unless `keep`."""
    name = f"orch_bench_{uuidlib.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Fleet:
    """Deterministic devices and, per night, which root cause each device has (if any)."""

    def __init__(self, devices: int, seed: int = 7) -> None:
        rng = random.Random(seed)
        self.uuids = [uuidlib.UUID(int=rng.getrandbits(128)).hex for _ in range(devices)]
        self.names = [f"dev-{i:05d}" for i in range(devices)]
        self.sites = [f"site-{i % 97:02d}" for i in range(devices)]
        self.profile = [rng.random() for _ in range(devices)]
        self.rng = rng

    def state(self, device: int, night: int) -> tuple[bool, str | None]:
        """(reachable, root-cause category or None) of `device` on `night`."""
        p, site = self.profile[device], self.sites[device]
        if p < 0.03 and 100 <= night < 140:
            return False, None
        if p < 0.08:
            return True, "time"
        if site == "site-13" and night >= 200:
            return True, "vpn"
        if site == "site-42" and 300 <= night < 330:
            return True, "dpi"
        if p < 0.14 and self.rng.random() < 0.3:
            return True, "dns"
        if self.rng.random() < 0.01:
            return False, None
        return True, None


def load(url: str, runs: int, devices: int) -> dict[str, int]:
    """Create the schema and COPY `runs` nights of `devices` devices; returns row counts."""
    Store.open(url, require_head=False).upgrade()
    fleet = Fleet(devices)
    engine = create_engine(url)
    counts = {"runs": runs, "device_results": 0, "findings": 0, "network_findings": 0}
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(
            "COPY runs (id, status, started_at, finished_at, source, fleet, devices_total, "
            "devices_reached, devices_with_problems, options, host, pid, orch_version) FROM STDIN"
        ) as copy:
            for night in range(runs):
                start = T0 + timedelta(days=night)
                copy.write_row(
                    (night + 1, "completed", start, start + timedelta(minutes=9), "balena:depots")
                    + ("depots", devices, devices, 0, "{}", "bench", 1, "bench")
                )
        with cursor.copy(
            "COPY devices (uuid, name, fleet, site, labels, public_address, first_seen_at, "
            "last_seen_at) FROM STDIN"
        ) as copy:
            last = T0 + timedelta(days=runs - 1)
            for i in range(devices):
                copy.write_row(
                    (fleet.uuids[i], fleet.names[i], "depots", fleet.sites[i], "[]")
                    + (f"203.0.113.{i % 97}", T0, last)
                )
        result_id = 0
        with cursor.copy(
            "COPY device_results (id, run_id, device_uuid, device_name, reachable, route, "
            "error, error_kind, started_at, finished_at, output_truncated, network_cause, "
            "public_address, site, labels) FROM STDIN"
        ) as results:
            failing: list[tuple[int, str | None, bool]] = []
            for night in range(runs):
                start = T0 + timedelta(days=night)
                for i in range(devices):
                    result_id += 1
                    reachable, category = fleet.state(i, night)
                    site = fleet.sites[i]
                    cause = None
                    if category == "vpn":
                        cause = f"network issue, not this device: site {site} blocks TCP 443"
                    results.write_row(
                        (result_id, night + 1, fleet.uuids[i], fleet.names[i], reachable)
                        + ("direct root@198.18.0.1:22222" if reachable else "proxy", None, None)
                        + (start, start + timedelta(seconds=4), False, cause)
                        + (f"203.0.113.{i % 97}", site, "[]")
                    )
                    if not reachable or category:
                        failing.append((result_id, category, reachable))
        counts["device_results"] = result_id
        with cursor.copy(
            "COPY findings (result_id, position, code, category, severity, summary, evidence, "
            "remediation, caused_by, is_root_cause) FROM STDIN"
        ) as copy:
            for rid, category, reachable in failing:
                for row in _findings(rid, category, reachable):
                    copy.write_row(row)
                    counts["findings"] += 1
        with cursor.copy(
            "COPY network_findings (run_id, position, kind, value, category, code, devices, "
            "affected, total, summary, remediation, unreachable) FROM STDIN"
        ) as copy:
            for night in range(runs):
                for position, (site, category) in enumerate(_flagged(night)):
                    members = [fleet.uuids[i] for i in range(devices) if fleet.sites[i] == site]
                    code = ROOTS[category][0]
                    copy.write_row(
                        (night + 1, position, "site", site, category, code)
                        + (_json_list(members), len(members), len(members))
                        + (f"site {site}: {ROOTS[category][1]}", "allow *.balena-cloud.com", False)
                    )
                    counts["network_findings"] += 1
        for table in ("runs", "devices", "device_results", "findings", "network_findings"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        raw.commit()
        raw.driver_connection.autocommit = True
        cursor.execute("VACUUM ANALYZE")
    finally:
        raw.close()
        engine.dispose()
    return counts


def _flagged(night: int) -> list[tuple[str, str]]:
    found = []
    if night >= 200:
        found.append(("site-13", "vpn"))
    if 300 <= night < 330:
        found.append(("site-42", "dpi"))
    return found


def _json_list(items: list[str]) -> str:
    return "[" + ",".join(f'"{item}"' for item in items) + "]"


def _findings(result_id: int, category: str | None, reachable: bool) -> list[tuple]:
    if not reachable:
        return [
            (result_id, 0, "access.timeout", "access", "error", "could not connect")
            + ("[]", "check the network", None, True)
        ]
    code, summary = ROOTS[category or "dns"]
    rows = [
        (result_id, 0, code, category, "error", summary, '["evidence"]', "see orch explain")
        + (None, True)
    ]
    for position, (symptom, symptom_category, text_) in enumerate(SYMPTOMS, start=1):
        rows.append(
            (result_id, position, symptom, symptom_category, "warning", text_, "[]", "")
            + (code, False)
        )
    rows.append((result_id, 3, "api.ok", "api", "info", "API answers", "[]", "", None, True))
    return rows


def timed(action) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(url: str, devices: int) -> None:
    """Print the timings of history (store and CLI), patterns and diff."""
    fleet = Fleet(devices)
    picks = [0, devices // 3, devices // 2, devices - 1]
    store = Store.open(url)
    try:
        cold = timed(lambda: store.device_history(fleet.uuids[picks[0]], limit=1000))
        found = store.device_history(fleet.uuids[picks[0]], limit=1000)
        warm = [
            timed(lambda i=i: store.device_history(fleet.uuids[i], limit=1000)) for i in picks * 5
        ]
        by_prefix = timed(lambda: store.device_history(fleet.uuids[picks[1]][:8], limit=1000))
        by_name = timed(lambda: store.device_history(fleet.names[picks[2]], limit=1000))
        category = timed(lambda: store.device_history(fleet.uuids[picks[3]], category="time"))
        patterns = timed(lambda: store.network_patterns())
        diff = timed(lambda: store.diff_runs(199, 200))
    finally:
        store.close()
    runner = CliRunner()
    cli = []
    for i in picks:
        start = time.perf_counter()
        result = runner.invoke(main, ["history", fleet.uuids[i], "--limit", "1000", "--db", url])
        cli.append(time.perf_counter() - start)
        if result.exit_code != 0:
            sys.exit(f"orch history failed: {result.output}")
    command = [sys.executable, "-c", "from orchestrator.cli import main; main()", "history"]
    fresh = []
    for i in picks:
        start = time.perf_counter()
        subprocess.run([*command, fleet.uuids[i], "--db", url], check=True, capture_output=True)
        fresh.append(time.perf_counter() - start)
    floor = []
    for _ in picks:
        start = time.perf_counter()
        subprocess.run(
            [*command[:3], "runs", "--limit", "1", "--db", url], check=True, capture_output=True
        )
        floor.append(time.perf_counter() - start)
    print(f"history entries per device: {len(found.entries)}")
    print(f"Store.device_history by uuid, cold:      {cold * 1000:8.1f} ms")
    print(
        f"Store.device_history by uuid, warm:      median {statistics.median(warm) * 1000:.1f} ms,"
        f" max {max(warm) * 1000:.1f} ms ({len(warm)} calls)"
    )
    print(f"Store.device_history by uuid prefix:     {by_prefix * 1000:8.1f} ms")
    print(f"Store.device_history by name:            {by_name * 1000:8.1f} ms")
    print(f"Store.device_history --category time:    {category * 1000:8.1f} ms")
    print(
        f"`orch history UUID --limit 1000` in-process via click (open, query, render): "
        f"median {statistics.median(cli) * 1000:.1f} ms, max {max(cli) * 1000:.1f} ms"
    )
    print(
        f"`orch history UUID` as a new process (interpreter start, imports, connect, query, "
        f"render): median {statistics.median(fresh) * 1000:.1f} ms, max {max(fresh) * 1000:.1f} ms"
    )
    print(
        f"`orch runs --limit 1` as a new process (the start-up floor, same imports and open): "
        f"median {statistics.median(floor) * 1000:.1f} ms"
    )
    print(f"Store.network_patterns (latest run):     {patterns * 1000:8.1f} ms")
    print(f"Store.diff_runs(199, 200) ({devices} devices): {diff * 1000:8.1f} ms")


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("ORCH_TEST_PG_URL"))
    parser.add_argument("--runs", type=int, default=365)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="Keep the benchmark database.")
    args = parser.parse_args()
    if not args.url:
        sys.exit("give --url postgresql+psycopg://USER:PASSWORD@HOST/DB or set ORCH_TEST_PG_URL")
    with fresh_database(args.url, args.keep) as url:
        start = time.perf_counter()
        counts = load(url, args.runs, args.devices)
        loaded = time.perf_counter() - start
        print(
            f"loaded {counts['runs']} runs, {counts['device_results']} device results, "
            f"{counts['findings']} findings, {counts['network_findings']} network findings "
            f"in {loaded:.1f} s"
        )
        measure(url, args.devices)


if __name__ == "__main__":
    main_()
