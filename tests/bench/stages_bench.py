"""CPU per device of orch's work after the bytes arrive: split, parse, diagnose, store.

    python tests/bench/stages_bench.py [--devices 1000] [--reps 3] [--profile OUT.txt]
    python tests/bench/stages_bench.py --from-db /tmp/pbwork/runs/replay-n1000-orch-r1/scratch/orch.db

No network and no SSH: the real probe output of each demo scenario is captured once (as
run_bench.py does), then ``--devices`` reports are assessed (``assess_device``) and stored (by
the writer a sweep uses, ``open_sweep_store``) in a fresh SQLite database in batches of the size
the run's writer uses. ``--from-db`` takes the
devices' output from the step rows of a run orch stored instead (for example one of
``../shared/peerbench``'s runs, whose devices send other output than the demo scenarios). Each stage is timed with
``time.process_time`` and the best of ``--reps`` is reported in ms per device, so the figures
are steadier than a whole fleet run on a shared machine. ``--profile`` writes cProfile's top
entries (by internal time) for one repetition.

orch remembers what each distinct journal message says, and the devices of one scenario (or
of a peerbench replay) repeat one journal, so after the first device their journals cost
little. ``--fresh-messages`` forgets those messages before each device: the cost in a fleet
whose journal lines all differ, in their counters and offsets for instance.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sqlite3
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from orchestrator.assess import assess_device  # noqa: E402
from orchestrator.config import Config  # noqa: E402
from orchestrator.diagnosis.signatures import forget_messages  # noqa: E402
from orchestrator.models import Device, Route  # noqa: E402
from orchestrator.probes.registry import get_probes, steps_for  # noqa: E402
from orchestrator.probes.script import MARKER, new_nonce  # noqa: E402
from orchestrator.runner import RunPlan  # noqa: E402
from orchestrator.sim.model import make_fleet  # noqa: E402
from orchestrator.store.convert import steps_from_document  # noqa: E402
from orchestrator.store.sqlite_sweep import open_sweep_store  # noqa: E402
from orchestrator.sweep import endpoints_from, slim  # noqa: E402
from orchestrator.transport.ssh import ScriptResult  # noqa: E402
from tests.bench.capture import Template, capture_sync  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--batch",
        type=int,
        default=50,
        help="reports per transaction (a sweep's writer "
        "commits what arrived in the last 50 ms, up to 500)",
    )
    parser.add_argument(
        "--fresh-messages",
        action="store_true",
        help="forget what orch remembers per journal message before each device, as in a fleet "
        "whose journal lines all differ (by default a scenario's devices repeat one journal)",
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile top entries to FILE")
    parser.add_argument(
        "--from-db",
        metavar="SQLITE_FILE",
        help="rebuild each device's output from the newest run stored in this orch database",
    )
    return parser.parse_args()


def outputs(n: int, nonce: str) -> list[tuple[Device, bytes]]:
    """``n`` devices of the demo mix, each with its scenario's real output rendered for it."""
    specs = make_fleet(n)
    representatives = {}
    for spec in specs:
        representatives.setdefault(spec.scenario, spec)
    templates = {
        scenario: Template.from_capture(entry)
        for scenario, entry in capture_sync(list(representatives.values())).items()
    }
    now = time.time()
    rendered = []
    for spec in specs:
        data = templates[spec.scenario].render(
            nonce.encode(), spec.uuid.encode(), spec.name.encode(), now
        )
        rendered.append((Device(uuid=spec.uuid, name=spec.name), data))
    return rendered


def stored_outputs(path: str, nonce: str) -> list[tuple[Device, bytes]]:
    """Each device's output of the newest run in an orch SQLite database, framed again.

    The steps come back in their stored order with their exit codes, flags and durations;
    only the nonce is new, so the result splits as the original output did.
    """
    prefix = f"{MARKER}:{nonce}:"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        (run_id,) = conn.execute("SELECT max(run_id) FROM device_results").fetchone()
        devices = conn.execute(
            "SELECT device_uuid, device_name, steps, step_output FROM device_results "
            "WHERE run_id = ? AND reachable ORDER BY id",
            (run_id,),
        ).fetchall()
        rendered = []
        for uuid, name, document, text in devices:
            parts = [f"{prefix}HELLO\n".encode()]
            for step in steps_from_document(json.loads(document or "null"), text):
                if step.missing:
                    continue
                body = step.output.encode()
                flags = "t" * step.truncated + "o" * step.timed_out + "s" * step.skipped or "-"
                code = -1 if step.exit_code is None else step.exit_code
                took = int(step.duration_s or 0)
                parts.append(
                    f"\n{prefix}BEGIN:{step.name}:{code}:{len(body)}:{flags}:{took}\n".encode()
                    + body
                    + f"\n{prefix}END:{step.name}\n".encode()
                )
            parts.append(f"{prefix}DONE\n".encode())
            rendered.append((Device(uuid=uuid, name=name), b"".join(parts)))
    if not rendered:
        raise SystemExit(f"{path}: no reachable device in its newest run")
    return rendered


def one_rep(
    devices: list[tuple[Device, bytes]], nonce: str, plan: RunPlan, batch: int, fresh: bool
) -> dict[str, float]:
    route = Route("direct", "127.0.0.1", 22222, "root")
    started = datetime.now(timezone.utc)
    sent = time.time()
    t0 = time.process_time()
    reports = []
    for device, data in devices:
        result = ScriptResult(
            stdout=data,
            stderr=b"",
            exit_status=0,
            sent_at=sent,
            chunk_times=((len(data), sent + 0.05),),
            truncated=False,
            error=None,
            connect_s=0.01,
            total_s=0.05,
        )
        if fresh:
            forget_messages()
        reports.append(
            assess_device(device, route, result, nonce=nonce, plan=plan, started=started)
        )
    t1 = time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_sweep_store(f"sqlite:///{tmp}/bench.db")  # what a sweep writes with
        run_id = store.start_run(source="bench", fleet=None, devices_total=len(reports), options={})
        t2 = time.process_time()
        for at in range(0, len(reports), batch):
            store.save_reports(run_id, reports[at : at + batch])
        t3 = time.process_time()
        store.close()
    slims = [slim(report) for report in reports]
    n = len(devices)
    assert len(slims) == n
    return {"assess": (t1 - t0) * 1000 / n, "store": (t3 - t2) * 1000 / n}


def main() -> None:
    args = parse_args()
    nonce = new_nonce()
    probes = get_probes(None)
    endpoints = endpoints_from(Config())
    plan = RunPlan(probes=probes, steps=steps_for(probes, endpoints), endpoints=endpoints)
    devices = stored_outputs(args.from_db, nonce) if args.from_db else outputs(args.devices, nonce)
    size = sum(len(data) for _, data in devices) / len(devices)
    print(f"{len(devices)} devices, {size / 1024:.1f} KB of output each on average")
    best: dict[str, float] = {}
    for _ in range(args.reps):
        for stage, ms in one_rep(devices, nonce, plan, args.batch, args.fresh_messages).items():
            best[stage] = min(best.get(stage, ms), ms)
    for stage, ms in best.items():
        print(f"{stage:>8}: {ms:6.3f} ms/device (best of {args.reps})")
    print(f"{'total':>8}: {sum(best.values()):6.3f} ms/device")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        one_rep(devices, nonce, plan, args.batch, args.fresh_messages)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
        Path(args.profile).write_text(text.getvalue())
        print(f"profile: {args.profile}")


if __name__ == "__main__":
    main()
